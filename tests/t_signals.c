/*
 * t_signals.c - signals and process deaths reach only whom they are meant
 * for.  SIGTERM to one forking child or prefork worker (in a program whose
 * own SIGTERM handler stops its server, as the examples' does) ends that
 * child or worker only; prefork workers and forking children notice their
 * server process's death (kill -9) and stop, so the port is free again;
 * the example servers survive SIGHUP, SIGUSR1 and SIGUSR2, then stop
 * cleanly on SIGTERM (unix socket file removed), and a second SIGTERM
 * during the grace period cuts at once.
 */
#include "tap.h"
#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* (TU_TSAN: ThreadSanitizer defers a signal handler until the thread
 * enters one of the calls it intercepts as blocking; a forking child
 * blocked in recv(), restarted after the signal, runs it only when data
 * comes.) */
enum { CUTS, OTHER, NCOUNT };
static atomic_int *count;

static void count_error(ss_server *s, ss_request *r, int err)
{
	if (r && err == -ECANCELED && strstr(r->errmsg, "cut"))
		atomic_fetch_add(&count[CUTS], 1);
	else
		atomic_fetch_add(&count[OTHER], 1);
}


static bool has_child(void *arg)
{
	pid_t one;

	return tu_children_of(getpid(), &one, 1) == 1;
}

/* An idle client: one echo done, its handler waits for more. */
static int idle_client(const ss_server *s)
{
	char c;
	int fd = tu_connect(s);

	if (tu_send_all(fd, "x", 1) < 0 || tu_read_exact(fd, &c, 1, 10) != 1)
		tap_bail("no echo");
	return fd;
}

/* ------------------------------------------------------------------ */
/* SIGTERM to one child or worker                                      */
/* ------------------------------------------------------------------ */

static ss_server *volatile app_server;

/* The program's own SIGTERM handler, as the examples have: stop the
 * server.  A child or worker must not run it. */
static void app_on_term(int sig)
{
	ss_server_shutdown(app_server);
}

static bool one_cut(void *arg)
{
	return atomic_load(&count[CUTS]) == 1;
}

/* The process *arg has ended and was reaped (by the server). */
static bool gone(void *arg)
{
	return kill(*(pid_t *)arg, 0) < 0 && errno == ESRCH;
}

static void test_term_one(const ss_mixin *m)
{
	static ss_server_ops ops;
	struct sigaction sa = { .sa_handler = app_on_term }, old;
	pid_t kid;
	pthread_t t;
	ss_server *s;
	char c;
	int fd;

	atomic_store(&count[CUTS], 0);
	ops = ss_tcp_server_ops;
	ops.handle_error = count_error;
	s = tu_server(&ops, m, &tu_echo_handler, NULL);
	s->workers = 2;
	s->close_grace = 1;	/* a busy worker's request: cut 1 s after its SIGTERM */
	app_server = s;
	sigaction(SIGTERM, &sa, &old);
	tu_serve_start(s, &t);
	fd = idle_client(s);
	if (!tu_wait_until(has_child, NULL, 10) || tu_children_of(getpid(), &kid, 1) != 1)
		tap_bail("no child");
	if (m == &ss_prefork_mixin) {
		pid_t all[8];
		int n = tu_children_of(getpid(), all, 8);

		kid = all[n - 1];	/* any worker */
	}
	kill(kid, SIGTERM);
	if (m == &ss_forking_mixin && TU_TSAN) {
		tap_skip(2, "ThreadSanitizer defers the child's SIGTERM handler while it "
			 "blocks in recv()");
		shutdown(fd, SHUT_WR);	/* then the child ends by itself */
	} else if (m == &ss_forking_mixin) {
		ok(tu_unanswered(tu_read_exact(fd, &c, 1, 10)),
		   "%s: SIGTERM to the child ends its request", m->name);
		ok(tu_wait_until(one_cut, NULL, 10), "%s: which the child reports as cut",
		   m->name);
	} else {
		ok(tu_wait_until(gone, &kid, 10), "%s: SIGTERM ended that worker", m->name);
	}
	ok(!tu_join_within(t, 0.3, NULL), "%s: the server goes on serving", m->name);
	ok(tu_echo_once(s, "still here"), "%s: and answers a new client", m->name);
	tu_serve_stop(s, &t);
	ss_server_close_within(s, 0.5);
	sigaction(SIGTERM, &old, NULL);
	close(fd);
	ss_server_free(s);
}

/* ------------------------------------------------------------------ */
/* The server process dies                                             */
/* ------------------------------------------------------------------ */

/* A server process (model m) on 127.0.0.1:0 with one idle client, killed
 * with SIGKILL: its workers or children must stop and free the port. */
static void test_parent_death(const ss_mixin *m)
{
	char addr[SS_ADDRSTRLEN], c;
	pid_t server, kids[16];
	int ready[2], n, i, fd, left = 0;
	ss_server *again, *probe;
	ss_error err;

	if (pipe(ready) < 0)
		tap_bail("pipe");
	server = fork();
	if (server == 0) {
		ss_server *s = ss_server_new(&ss_tcp_server_ops, m, "127.0.0.1:0",
					     &tu_echo_handler, 0, &err);

		close(ready[0]);
		if (!s)
			_exit(3);
		s->workers = 2;
		ss_server_address(s, addr, sizeof addr);
		if (write(ready[1], addr, sizeof addr) != sizeof addr)
			_exit(4);
		ss_server_serve_forever(s, 0.5);
		_exit(0);
	}
	close(ready[1]);
	if (read(ready[0], addr, sizeof addr) != sizeof addr)
		tap_bail("no address");
	close(ready[0]);
	probe = ss_server_new(&ss_tcp_server_ops, NULL, addr, NULL, SS_DEFER_BIND, &err);
	fd = idle_client(probe);
	n = tu_children_of(server, kids, 16);
	ok(n > 0, "%s: the server process has %d workers or children", m->name, n);
	kill(server, SIGKILL);
	tu_exit_status(server);
	/* we are their subreaper: they come to us when they end */
	for (i = 0; i < n; i++)
		if (tu_wait_exit(kids[i], 10000, NULL) == -1)
			left++;
	is_int(left, 0, "%s: every one of them stopped after the server died", m->name);
	ok(tu_unanswered(tu_read_exact(fd, &c, 1, 10)), "%s: the idle client was let go",
	   m->name);
	again = ss_server_new(&ss_tcp_server_ops, NULL, addr, NULL, 0, &err);
	ok(again != NULL, "%s: the address can be bound again (%s)", m->name,
	   again ? "ok" : err.msg);
	ss_server_free(again);
	ss_server_free(probe);
	close(fd);
}

/* ------------------------------------------------------------------ */
/* The example servers                                                 */
/* ------------------------------------------------------------------ */

/* Start example prog with args; its address from "listening on ...". */
static pid_t start_example(const char *const argv[], char *addr, int *err)
{
	char line[600];
	int out;
	pid_t pid = tu_spawn(tu_example_path(argv[0]), argv, NULL, &out, err);

	if (tu_read_until(out, line, sizeof line, true, 10000) < 0 ||
	    sscanf(line, "listening on %439s", addr) != 1)
		tap_bail("%s: no 'listening on' line (got '%s')", argv[0], line);
	close(out);
	return pid;
}

static int unix_connect(const char *path)
{
	struct sockaddr_un { sa_family_t f; char p[108]; } a = { AF_UNIX, "" };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(a.p, sizeof a.p, "%s", path);
	if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
		close(fd);
		return -errno;
	}
	return fd;
}

static bool unix_echo(const char *path)
{
	char buf[16];
	int fd = unix_connect(path);
	ssize_t n;

	if (fd < 0)
		return false;
	n = tu_roundtrip_fd(fd, SOCK_STREAM, "ping", 4, buf, sizeof buf);
	close(fd);
	return n == 4 && !memcmp(buf, "ping", 4);
}

static void test_stray_signals(const char *model)
{
	const char *path = tu_tmppath("stray");
	const char *argv[] = { "echo_unix_stream", "-m", model, "-w", "2", path, NULL };
	char addr[SS_ADDRSTRLEN];
	struct stat st;
	pid_t pid = start_example(argv, addr, NULL);
	int sigs[] = { SIGHUP, SIGUSR1, SIGUSR2 }, status;

	for (int i = 0; i < 3; i++)
		kill(pid, sigs[i]);
	ok(unix_echo(path), "echo_unix_stream -m %s: serves after SIGHUP, SIGUSR1, SIGUSR2",
	   model);
	kill(pid, SIGTERM);
	status = tu_wait_exit(pid, 10000, NULL);
	is_int(status, 0, "echo_unix_stream -m %s: then SIGTERM stops it with 0", model);
	ok(stat(path, &st) < 0 && errno == ENOENT, "echo_unix_stream -m %s: socket file removed",
	   model);
}

/* A TCP connect to addr (text) is refused. */
static bool refused(void *arg)
{
	ss_server *probe;
	ss_error e;
	int fd;

	probe = ss_server_new(&ss_tcp_server_ops, NULL, arg, NULL, SS_DEFER_BIND, &e);
	if (!probe)
		return false;
	fd = tu_connect_try(probe);
	ss_server_free(probe);
	if (fd >= 0)
		close(fd);
	return fd == -ECONNREFUSED;
}

static void test_second_signal(const char *model)
{
	const char *argv[] = { "echo_tcp", "-m", model, "-w", "2", "-g", "60",
			       "127.0.0.1:0", NULL };
	char addr[SS_ADDRSTRLEN], errbuf[4096] = "", c;
	ss_server *probe;
	ss_error e;
	double ms;
	int err, status, fd;
	pid_t pid = start_example(argv, addr, &err);

	probe = ss_server_new(&ss_tcp_server_ops, NULL, addr, NULL, SS_DEFER_BIND, &e);
	fd = idle_client(probe);
	kill(pid, SIGTERM);
	/* two signals sent at once may arrive as one: wait until the first
	 * one's close has begun (new clients refused) */
	ok(tu_wait_until(refused, addr, 10), "echo_tcp -m %s: SIGTERM stops accepting", model);
	kill(pid, SIGTERM);
	status = tu_wait_exit(pid, 20000, &ms);
	is_int(status, 0, "echo_tcp -m %s -g 60: a second SIGTERM ends the grace at once "
	       "(%.0f ms)", model, ms);
	tu_read_until(err, errbuf, sizeof errbuf, false, 5000);
	ok(strstr(errbuf, "request cut") != NULL,
	   "echo_tcp -m %s: the idle request was reported cut", model);
	ok(tu_unanswered(tu_read_exact(fd, &c, 1, 10)), "echo_tcp -m %s: and its client let go",
	   model);
	close(err);
	close(fd);
	ss_server_free(probe);
}

int main(void)
{
	const char *models[] = { "threading", "forking", "prefork", "coroutine",
				 "prefork+coroutine" };

	tu_init();
	count = tu_shared_counters(NCOUNT);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		tap_bail("PR_SET_CHILD_SUBREAPER: %s", strerror(errno));

	test_term_one(&ss_forking_mixin);
	test_term_one(&ss_prefork_mixin);
	test_parent_death(&ss_prefork_mixin);
	test_parent_death(&ss_prefork_coroutine_mixin);
	test_parent_death(&ss_forking_mixin);
	for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
		test_stray_signals(models[i]);
	for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
		test_second_signal(models[i]);
	return tap_done();
}
