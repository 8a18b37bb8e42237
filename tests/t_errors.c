/*
 * t_errors.c - failing requests: a handle() error reaches handle_error
 * exactly once with its message and the client's address (sync,
 * threading, and forking where handle_error runs in the child); the
 * connection is closed and the server goes on.  Setup failures skip
 * handle and finish; handle failures still run finish.  Requests refused
 * by verify_request are shut down exactly once and never reach the
 * handler.  The default handle_error writes one line naming the client
 * and the cause.
 */
#include "tap.h"
#include "testutil.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Counters in shared memory: bumped by threads and forked children. */
enum {
	C_ERRORS,	/* handle_error calls with a request */
	C_ERRPID,	/* pid that ran the last handle_error */
	C_BOOM,		/* last errmsg contained "boom" */
	C_PEER_OK,	/* last request's client was the expected one */
	C_ERRCODE,	/* last err argument */
	C_WANT_PORT,	/* the client port we expect to see */
	C_SETUP,	/* setup calls */
	C_HANDLE,	/* handle calls */
	C_FINISH,	/* finish calls */
	C_SHUT,		/* shutdown_request calls */
	C_N
};

static atomic_int *c;

static void reset_counters(void)
{
	int i;

	for (i = 0; i < C_N; i++)
		atomic_store(&c[i], 0);
}

/* --- handlers --- */

/* Echo what comes; a connection that sends nothing fails with "boom". */
static int echo_or_boom(ss_request *r)
{
	char buf[4096];
	ssize_t n = ss_read_some(r, buf, sizeof(buf));

	atomic_fetch_add(&c[C_HANDLE], 1);
	if (n == 0)
		return ss_request_error(r, -EPROTO, "boom: the client sent nothing");
	while (n > 0) {
		if (ss_write_all(r, buf, (size_t)n) < 0)
			return -EIO;
		n = ss_read_some(r, buf, sizeof(buf));
	}
	return (int)n;
}

static int count_finish(ss_request *r)
{
	atomic_fetch_add(&c[C_FINISH], 1);
	return 0;
}

static int failing_setup(ss_request *r)
{
	atomic_fetch_add(&c[C_SETUP], 1);
	return ss_request_error(r, -EACCES, "setup refused: boom");
}

static const ss_handler boom_handler = {
	.handle = echo_or_boom,
	.finish = count_finish,
};

static const ss_handler setup_fail_handler = {
	.setup = failing_setup,
	.handle = echo_or_boom,
	.finish = count_finish,
};

/* --- overridden steps --- */

static void record_error(ss_server *s, ss_request *r, int err)
{
	char peer[SS_ADDRSTRLEN];

	if (!r)
		return;
	ss_request_peer(r, peer, sizeof(peer));
	atomic_store(&c[C_ERRPID], (int)getpid());
	atomic_store(&c[C_BOOM], strstr(r->errmsg, "boom") != NULL);
	atomic_store(&c[C_PEER_OK],
		     ss_addr_port(&r->client) == atomic_load(&c[C_WANT_PORT]) &&
		     !strncmp(peer, "127.0.0.1:", 10));
	atomic_store(&c[C_ERRCODE], err);
	atomic_fetch_add(&c[C_ERRORS], 1);
}

static bool reject(ss_server *s, ss_request *r)
{
	return false;
}

static void count_shutdown(ss_server *s, ss_request *r)
{
	atomic_fetch_add(&c[C_SHUT], 1);
	ss_tcp_server_ops.shutdown_request(s, r);
}

/* --- client side --- */

static int local_port(int fd)
{
	ss_addr a;

	memset(&a, 0, sizeof(a));
	a.len = sizeof(a.ss);
	getsockname(fd, (struct sockaddr *)&a.ss, &a.len);
	a.family = a.ss.ss_family;
	return ss_addr_port(&a);
}

/* Connect, send nothing, half-close; true when the server closes the
 * connection (EOF or reset) within the deadline. */
static bool silent_client_sees_close(ss_server *s)
{
	char buf[16];
	int fd = tu_connect(s);
	ssize_t n;

	atomic_store(&c[C_WANT_PORT], local_port(fd));
	shutdown(fd, SHUT_WR);
	n = tu_read_to_eof(fd, buf, sizeof(buf), TU_IO_TIMEOUT);
	close(fd);
	return tu_unanswered(n);
}

static bool errors_is_one(void *arg)
{
	return atomic_load(&c[C_ERRORS]) >= 1;
}

/* A silent client whose request fails: true when its connection is
 * closed; returns once the failure reached handle_error (or timed out). */
static bool failure_closes(ss_server *s)
{
	bool closed = silent_client_sees_close(s);

	tu_wait_until(errors_is_one, NULL, TU_IO_TIMEOUT);
	return closed;
}

/* --- tests --- */

/* Serve h under model m with ops, whose handle_error now records into
 * the counters (reset); ops must outlive the server. */
static ss_server *serve_recorded(ss_server_ops *ops, const ss_mixin *m,
				 const ss_handler *h, pthread_t *t)
{
	ss_server *s;

	reset_counters();
	ops->handle_error = record_error;
	s = tu_server(ops, m, h, NULL);
	tu_serve_start(s, t);
	return s;
}

static void test_handle_error(const ss_mixin *m)
{
	ss_server_ops ops = ss_tcp_server_ops;
	const char *n = m->name;
	pthread_t t;
	ss_server *s = serve_recorded(&ops, m, &boom_handler, &t);

	ok(failure_closes(s), "%s: the failed connection is closed", n);
	ok(tu_echo_once(s, "still here"), "%s: the server keeps serving", n);
	tu_serve_stop(s, &t);
	ss_server_close(s);
	is_int(atomic_load(&c[C_ERRORS]), 1, "%s: handle_error called exactly once", n);
	is_int(atomic_load(&c[C_ERRCODE]), -EPROTO, "%s: with the handler's errno", n);
	ok(atomic_load(&c[C_BOOM]), "%s: r->errmsg has the handler's message", n);
	ok(atomic_load(&c[C_PEER_OK]), "%s: r->client is the client's address", n);
	if (m == &ss_forking_mixin)
		ok(atomic_load(&c[C_ERRPID]) != (int)getpid(),
		   "forking: handle_error ran in the child (pid %d, parent %d)",
		   atomic_load(&c[C_ERRPID]), (int)getpid());
	else
		is_int(atomic_load(&c[C_ERRPID]), getpid(),
		       "%s: handle_error ran in this process", n);
	is_int(atomic_load(&c[C_FINISH]), 2, "%s: finish ran for both requests", n);
	ok(tu_no_children(), "%s: no children left", n);
	ss_server_free(s);
}

static void test_setup_failure(const ss_mixin *m)
{
	ss_server_ops ops = ss_tcp_server_ops;
	const char *n = m->name;
	pthread_t t;
	ss_server *s = serve_recorded(&ops, m, &setup_fail_handler, &t);

	ok(failure_closes(s), "%s setup failure: connection closed", n);
	tu_serve_stop(s, &t);
	ss_server_close(s);
	is_int(atomic_load(&c[C_SETUP]), 1, "%s setup failure: setup ran once", n);
	is_int(atomic_load(&c[C_HANDLE]), 0, "%s setup failure: handle not called", n);
	is_int(atomic_load(&c[C_FINISH]), 0, "%s setup failure: finish not called", n);
	is_int(atomic_load(&c[C_ERRORS]), 1, "%s setup failure: handle_error once", n);
	is_int(atomic_load(&c[C_ERRCODE]), -EACCES, "%s setup failure: setup's errno", n);
	ss_server_free(s);
}

static void test_handle_failure_runs_finish(void)
{
	ss_server_ops ops = ss_tcp_server_ops;
	pthread_t t;
	ss_server *s = serve_recorded(&ops, NULL, &boom_handler, &t);

	silent_client_sees_close(s);
	tu_serve_stop(s, &t);
	is_int(atomic_load(&c[C_HANDLE]), 1, "handle failure: handle ran");
	is_int(atomic_load(&c[C_FINISH]), 1, "handle failure: finish still ran");
	is_int(atomic_load(&c[C_ERRORS]), 1, "handle failure: handle_error once");
	ss_server_free(s);
}

static bool shut_is_3(void *arg)
{
	return atomic_load(&c[C_SHUT]) >= 3;
}

static void test_verify_reject(const ss_mixin *m)
{
	ss_server_ops ops = ss_tcp_server_ops;
	int i, closed = 0;
	pthread_t t;
	ss_server *s;

	ops.verify_request = reject;
	ops.shutdown_request = count_shutdown;
	s = serve_recorded(&ops, m, &boom_handler, &t);
	for (i = 0; i < 3; i++)
		closed += silent_client_sees_close(s);
	tu_wait_until(shut_is_3, NULL, TU_IO_TIMEOUT);
	tu_serve_stop(s, &t);
	ss_server_close(s);
	is_int(closed, 3, "%s reject: every refused client saw the connection closed",
	       m->name);
	is_int(atomic_load(&c[C_SHUT]), 3,
	       "%s reject: shutdown_request ran once per refused request", m->name);
	is_int(atomic_load(&c[C_HANDLE]) + atomic_load(&c[C_FINISH]), 0,
	       "%s reject: no request reached the handler", m->name);
	is_int(atomic_load(&c[C_ERRORS]), 0, "%s reject: no error reported", m->name);
	ss_server_free(s);
}

static int count_lines(const char *text)
{
	int n = 0;

	for (; *text; text++)
		n += *text == '\n';
	return n;
}

/* The default handle_error: one line on stderr naming client and cause. */
static void test_default_message(const ss_mixin *m)
{
	char client[SS_ADDRSTRLEN];
	ss_server *s;
	pthread_t t;
	char *text;

	reset_counters();
	s = tu_server(&ss_tcp_server_ops, m, &boom_handler, NULL);
	tu_serve_start(s, &t);
	tu_stderr_begin();
	silent_client_sees_close(s);
	tu_serve_stop(s, &t);
	ss_server_close(s);	/* a forked child has written and exited */
	text = tu_stderr_end();
	snprintf(client, sizeof(client), "127.0.0.1:%d", atomic_load(&c[C_WANT_PORT]));
	if (!ok(strstr(text, client) != NULL,
		"%s default handle_error names the client %s", m->name, client))
		tap_diag("    stderr was: %s", text);
	ok(strstr(text, "boom") != NULL, "%s default handle_error gives the cause",
	   m->name);
	is_int(count_lines(text), 1, "%s default handle_error writes one line", m->name);
	tap_diag("stderr: %s", text);
	free(text);
	ss_server_free(s);
}

int main(void)
{
	const ss_mixin *models[] = {
		&ss_sync_mixin, &ss_threading_mixin, &ss_forking_mixin,
	};
	double t0 = tu_now();
	size_t i;

	tu_init();
	c = tu_shared_counters(C_N);
	for (i = 0; i < 3; i++)
		test_handle_error(models[i]);
	for (i = 0; i < 3; i++)
		test_setup_failure(models[i]);
	test_handle_failure_runs_finish();
	for (i = 0; i < 3; i++)
		test_verify_reject(models[i]);
	test_default_message(&ss_sync_mixin);
	test_default_message(&ss_forking_mixin);
	tap_diag("took %.0f ms", (tu_now() - t0) * 1000);
	return tap_done();
}
