/*
 * t_forking.c - the forking model (its echo, stop and leak checks are
 * t_echo_matrix's, as for every registered model): the server reaps only
 * its own children (a child the program forked itself keeps its exit
 * status for the program); max_children bounds the children running at
 * once while every client is served in the end; failing children leave
 * no zombies.
 */
#include "tap.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Counters the children bump, in shared memory. */
enum {
	C_RUNNING,	/* handlers running now */
	C_MAX,		/* most handlers seen running at once */
	C_N
};

static atomic_int *c;

/* Fork a child of our own that exits with status when gate[1] is closed
 * (reads EOF from gate[0]), or at once when gate is NULL. */
static pid_t own_child(const int *gate, int status)
{
	pid_t pid = fork();
	char b;

	if (pid < 0)
		tap_bail("fork: %s", strerror(errno));
	if (pid == 0) {
		if (gate) {
			close(gate[1]);
			while (read(gate[0], &b, 1) < 0 && errno == EINTR)
				;
		}
		_exit(status);
	}
	return pid;
}

static void test_foreign_children(void)
{
	ss_server *s;
	pthread_t t;
	pid_t before, during;
	int gate[2], i, good = 0;

	if (pipe2(gate, O_CLOEXEC) < 0)
		tap_bail("pipe: %s", strerror(errno));
	before = own_child(gate, 42);
	s = tu_server(&ss_tcp_server_ops, &ss_forking_mixin, &tu_echo_handler, NULL);
	tu_serve_start(s, &t);
	for (i = 0; i < 3; i++)
		good += tu_echo_once(s, "before");
	during = own_child(NULL, 43);	/* a zombie while the server reaps */
	for (i = 0; i < 5; i++)
		good += tu_echo_once(s, "during");
	is_int(good, 8, "forking: requests served with foreign children around");
	ok(tu_wait_active(s, 0, 5.0), "forking: the server reaped its own children");
	tu_serve_stop(s, &t);
	ss_server_close(s);
	ss_server_free(s);
	close(gate[1]);	/* lets "before" exit */
	is_int(tu_exit_status(during), 43,
	       "a child forked while serving keeps its exit status");
	is_int(tu_exit_status(before), 42,
	       "a child forked before serving keeps its exit status");
	close(gate[0]);
	ok(tu_no_children(), "forking: no children left");
}

/* Counts handlers running at once, echoes until the client is done. */
static int counted_echo(ss_request *r)
{
	int now = atomic_fetch_add(&c[C_RUNNING], 1) + 1;
	int max = atomic_load(&c[C_MAX]);
	int rc;

	while (now > max && !atomic_compare_exchange_weak(&c[C_MAX], &max, now))
		;
	rc = tu_echo(r);
	atomic_fetch_sub(&c[C_RUNNING], 1);
	return rc;
}

static const ss_handler counted_handler = { .handle = counted_echo };

static bool two_running(void *arg)
{
	return atomic_load(&c[C_RUNNING]) == 2;
}

static void test_max_children(void)
{
	enum { N = 6 };
	ss_server *s = tu_server(&ss_tcp_server_ops, &ss_forking_mixin,
				 &counted_handler, NULL);
	int fd[N], i, served = 0;
	char msg[32], out[32];
	pthread_t t;
	ssize_t n;

	s->max_children = 2;
	tu_serve_start(s, &t);
	for (i = 0; i < N; i++)
		fd[i] = tu_connect(s);
	ok(tu_wait_until(two_running, NULL, TU_IO_TIMEOUT),
	   "max_children 2: two handlers run while 6 clients wait");
	ok(ss_server_active_count(s) <= 2, "max_children 2: active_count %zu <= 2",
	   ss_server_active_count(s));
	for (i = 0; i < N; i++) {
		snprintf(msg, sizeof(msg), "client %d", i);
		n = tu_roundtrip_fd(fd[i], SOCK_STREAM, msg, strlen(msg), out,
				    sizeof(out));
		served += n == (ssize_t)strlen(msg) && !memcmp(out, msg, (size_t)n);
		close(fd[i]);
	}
	is_int(served, N, "max_children 2: all 6 clients served in the end");
	ok(atomic_load(&c[C_MAX]) <= 2, "max_children 2: at most %d ran at once",
	   atomic_load(&c[C_MAX]));
	tu_serve_stop(s, &t);
	ss_server_close(s);
	is_int(ss_server_active_count(s), 0, "max_children: active_count 0 after close");
	ok(tu_no_children(), "max_children: no children left");
	ss_server_free(s);
}

/* Empty connections fail in the child; the rest echo. */
static int echo_or_fail(ss_request *r)
{
	char buf[256];
	ssize_t n = ss_read_some(r, buf, sizeof(buf));

	if (n == 0)
		return ss_request_error(r, -EPROTO, "nothing sent");
	while (n > 0) {
		if (ss_write_all(r, buf, (size_t)n) < 0)
			return -EIO;
		n = ss_read_some(r, buf, sizeof(buf));
	}
	return (int)n;
}

static const ss_handler failing_handler = { .handle = echo_or_fail };

static void quiet_error(ss_server *s, ss_request *r, int err)
{
}

static void test_failing_children(void)
{
	ss_server_ops ops = ss_tcp_server_ops;
	ss_server *s;
	pthread_t t;
	int i, good = 0;
	char out[8];

	ops.handle_error = quiet_error;
	s = tu_server(&ops, &ss_forking_mixin, &failing_handler, NULL);
	tu_serve_start(s, &t);
	for (i = 0; i < 6; i++)
		good += i % 2 ? tu_echo_once(s, "ok") :
			tu_roundtrip(s, "", 0, out, sizeof(out)) == 0;
	is_int(good, 6, "forking: failing and succeeding children all handled");
	tu_serve_stop(s, &t);
	ss_server_close(s);
	ok(tu_no_children(), "forking: no zombies after failing children and close");
	ss_server_free(s);
}

int main(void)
{
	double t0 = tu_now();

	tu_init();
	c = tu_shared_counters(C_N);
	test_foreign_children();
	test_max_children();
	test_failing_children();
	tap_diag("took %.0f ms", (tu_now() - t0) * 1000);
	return tap_done();
}
