/*
 * t_shutdown.c - stopping serve_forever: ss_server_shutdown acts at once
 * whatever the poll interval; a shutdown before serve_forever makes it
 * return at once and is consumed (the next call serves); shutdown works
 * from another thread, from a handler under every model of the registry
 * (in the loop, a thread, a forked child, a worker, a coroutine), and from
 * a signal handler; many servers shut down at once never hang; closing a
 * server that never served; ss_server_handle_request's timeout
 * (handle_timeout once) and its cancellation.
 */
#include "tap.h"
#include "testutil.h"
#include "ss_internal.h"	/* ss__sys.poke: a late wakeup byte */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define JOIN_LIMIT 5.0		/* a stopped loop must end within this */

/* Join the serving thread or bail (a hang would stall the whole run). */
static int join_or_bail(pthread_t t, const char *what)
{
	void *ret = NULL;

	if (!tu_join_within(t, JOIN_LIMIT, &ret))
		tap_bail("%s: serve_forever still running %.0f s after shutdown",
			 what, JOIN_LIMIT);
	return (int)(intptr_t)ret;
}

static void roundtrip_ok(ss_server *s, const char *what)
{
	char out[64];
	ssize_t n = tu_roundtrip(s, "ping", 4, out, sizeof(out));

	if (!ok(n == 4 && !memcmp(out, "ping", 4), "%s: echo works", what))
		tap_diag("    got %zd (%s)", n, n < 0 ? strerror((int)-n) : "short");
}

/* serve_forever(s, 10.0): shutdown + join well under the interval. */
static void test_latency(void)
{
	ss_server *s = tu_server(&ss_tcp_server_ops, NULL, &tu_echo_handler, NULL);
	pthread_t t;
	double t0, ms;

	tu_serve_start_interval(s, &t, 10.0);
	roundtrip_ok(s, "latency");	/* the loop is running */
	t0 = tu_now();
	ss_server_shutdown(s);
	is_int(join_or_bail(t, "latency"), 0, "serve_forever returned 0");
	ms = (tu_now() - t0) * 1000;
	tap_diag("shutdown latency with a 10 s poll interval: %.2f ms", ms);
	ok(ms < 1000, "shutdown + join took %.1f ms (< 1000)", ms);
	ss_server_free(s);
}

/* A shutdown before serve_forever: it returns at once, and only once. */
static void test_early_shutdown(void)
{
	ss_server *s = tu_server(&ss_tcp_server_ops, NULL, &tu_echo_handler, NULL);
	pthread_t t;
	double t0, ms;
	int rc;

	ss_server_shutdown(s);
	t0 = tu_now();
	rc = ss_server_serve_forever(s, 10.0);
	ms = (tu_now() - t0) * 1000;
	is_int(rc, 0, "early shutdown: serve_forever returned 0");
	ok(ms < 1000, "early shutdown: serve_forever returned at once (%.1f ms)", ms);
	tu_serve_start_interval(s, &t, 10.0);
	roundtrip_ok(s, "after an early shutdown, the next serve_forever");
	ss_server_shutdown(s);
	is_int(join_or_bail(t, "early"), 0, "second serve_forever stopped by shutdown");
	ss_server_free(s);
}

static void *shutdown_main(void *arg)
{
	ss_server_shutdown(arg);
	return NULL;
}

static void test_other_thread(void)
{
	ss_server *s = tu_server(&ss_tcp_server_ops, &ss_threading_mixin,
				 &tu_echo_handler, NULL);
	pthread_t t, killer;

	tu_serve_start_interval(s, &t, 10.0);
	roundtrip_ok(s, "other thread");
	pthread_create(&killer, NULL, shutdown_main, s);
	is_int(join_or_bail(t, "other thread"), 0,
	       "shutdown from another thread stops the loop");
	pthread_join(killer, NULL);
	ss_server_close(s);
	is_int(ss_server_active_count(s), 0, "other thread: nothing in flight");
	ss_server_free(s);
}

/* A handler that echoes, then asks its own server to stop. */
static int echo_then_stop(ss_request *r)
{
	int rc = tu_echo(r);

	ss_server_shutdown(r->server);
	return rc;
}

static const ss_handler stopping_handler = { .handle = echo_then_stop };

static void test_from_handler(const ss_mixin *m)
{
	ss_server *s = tu_server(&ss_tcp_server_ops, m, &stopping_handler, NULL);
	char what[64];
	pthread_t t;
	double t0;
	int rc;

	snprintf(what, sizeof(what), "shutdown from a %s handler", m->name);
	tu_serve_start_interval(s, &t, 10.0);
	t0 = tu_now();
	roundtrip_ok(s, what);
	rc = join_or_bail(t, what);
	is_int(rc, 0, "%s stops the loop (%.1f ms)", what, (tu_now() - t0) * 1000);
	ss_server_close(s);
	is_int(ss_server_active_count(s), 0, "%s: nothing in flight after close", what);
	ok(tu_no_children(), "%s: no children left", what);
	ss_server_free(s);
}

static ss_server *volatile sig_server;

static void on_sigusr1(int sig)
{
	if (sig_server)
		ss_server_shutdown(sig_server);
}

static void test_signal(void)
{
	struct sigaction sa, old;
	ss_server *s = tu_server(&ss_tcp_server_ops, NULL, &tu_echo_handler, NULL);
	pthread_t t;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigusr1;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, &old);
	sig_server = s;
	tu_serve_start_interval(s, &t, 10.0);
	roundtrip_ok(s, "signal");
	pthread_kill(t, SIGUSR1);
	is_int(join_or_bail(t, "signal"), 0,
	       "shutdown from a signal handler (SIGUSR1 to the loop's thread)");
	sig_server = NULL;
	sigaction(SIGUSR1, &old, NULL);
	tu_serve_start_interval(s, &t, 10.0);
	roundtrip_ok(s, "after a signal-driven stop, the next serve_forever");
	is_int(tu_serve_stop(s, &t), 0, "and it stops again on shutdown");
	ss_server_free(s);
}

/* Twenty servers started and shut down at once; every loop ends. */
static void test_many(void)
{
	enum { N = 20 };
	ss_server *s[N];
	pthread_t t[N];
	int i, stopped = 0;
	double t0, ms;

	for (i = 0; i < N; i++) {
		s[i] = tu_server(&ss_tcp_server_ops,
				 i % 2 ? &ss_threading_mixin : NULL,
				 &tu_echo_handler, NULL);
		tu_serve_start_interval(s[i], &t[i], 10.0);
		ss_server_shutdown(s[i]);
	}
	t0 = tu_now();
	for (i = 0; i < N; i++)
		if (tu_join_within(t[i], JOIN_LIMIT - (tu_now() - t0), NULL))
			stopped++;
	if (stopped < N)
		tap_bail("%d of %d servers never stopped", N - stopped, N);
	ms = (tu_now() - t0) * 1000;
	is_int(stopped, N, "20 servers shut down at start all stopped (%.1f ms)", ms);
	for (i = 0; i < N; i++)
		ss_server_free(s[i]);
}

static void test_close_unserved(void)
{
	ss_server *s = tu_server(&ss_tcp_server_ops, &ss_threading_mixin,
				 &tu_echo_handler, NULL);
	int lfd = ss_server_fileno(s);
	double t0 = tu_now();

	ss_server_close(s);
	ok(tu_now() - t0 < 1.0, "closing a threading server that never served is quick");
	ok(tu_fd_closed(lfd), "its listening fd is closed");
	ok(ss_server_serve_forever(s, 10.0) < 0,
	   "serve_forever after close fails instead of serving");
	ss_server_close(s);
	pass("a second close is harmless");
	ss_server_free(s);
}

static atomic_int timeouts;

static void count_timeout(ss_server *s)
{
	atomic_fetch_add(&timeouts, 1);
}

/* handle_request: timeout, default timeout, cancellation, a request. */
static void test_handle_request(void)
{
	ss_server_ops ops = ss_tcp_server_ops;
	ss_server *s;
	char out[16];
	double t0, ms;
	int fd, rc;

	ops.handle_timeout = count_timeout;
	s = tu_server(&ops, NULL, &tu_echo_handler, NULL);
	t0 = tu_now();
	rc = ss_server_handle_request(s, 0.05);
	ms = (tu_now() - t0) * 1000;
	is_int(rc, -ETIMEDOUT, "handle_request(0.05) with no client: -ETIMEDOUT");
	is_int(atomic_load(&timeouts), 1, "handle_timeout called exactly once");
	ok(ms >= 40 && ms < 1000, "handle_request waited about 50 ms (%.1f ms)", ms);

	s->timeout = 0.05;
	rc = ss_server_handle_request(s, -1);
	is_int(rc, -ETIMEDOUT, "handle_request(-1) uses server->timeout");
	is_int(atomic_load(&timeouts), 2, "handle_timeout called once more");

	ss_server_shutdown(s);
	t0 = tu_now();
	rc = ss_server_handle_request(s, 5.0);
	is_int(rc, -ECANCELED, "handle_request after shutdown: -ECANCELED");
	ok(tu_now() - t0 < 1.0, "and it returned at once");

	fd = tu_connect(s);
	tu_send_all(fd, "ping", 4);
	shutdown(fd, SHUT_WR);
	rc = ss_server_handle_request(s, 5.0);
	is_int(rc, 0, "handle_request with a client: 0 (shutdown was consumed)");
	rc = (int)tu_read_to_eof(fd, out, sizeof(out), TU_IO_TIMEOUT);
	ok(rc == 4 && !memcmp(out, "ping", 4), "the request was echoed (%d bytes)", rc);
	is_int(atomic_load(&timeouts), 2, "no timeout reported for it");
	close(fd);
	ss_server_free(s);
}

/* A poke that is slow to leave (the poking thread preempted between the
 * flag and the byte), injected: 20 ms late. */
static ssize_t late_poke(int fd, const void *buf, size_t len, int flags)
{
	struct timespec ts = { 0, 20 * 1000000L };

	nanosleep(&ts, NULL);
	return send(fd, buf, len, flags);
}

/* A shutdown made while the loop runs is used up by that loop, even when
 * the loop saw the flag before the wakeup byte arrived: the next loop
 * must not find the byte and stop at once.  Shutdown right after the loop
 * starts (its byte late), then a zero-timeout handle_request, which times
 * out unless a stale stop is left. */
static void test_no_stale_stop(void)
{
	ss_server *s = tu_server(&ss_tcp_server_ops, NULL, &tu_echo_handler, NULL);
	int stale = 0, rc = 0;
	pthread_t t;

	ss__sys.poke = late_poke;
	for (int i = 0; i < 20; i++) {
		tu_serve_start_interval(s, &t, 10);
		ss_server_shutdown(s);
		pthread_join(t, NULL);
		if ((rc = ss_server_handle_request(s, 0)) != -ETIMEDOUT)
			stale++;
	}
	ss__sys_reset();
	is_int(stale, 0, "20 shutdowns with late wakeups, each used up by its own loop "
	       "(last rc %d)", rc);
	ss_server_free(s);
}

int main(void)
{
	double t0 = tu_now();

	tu_init();
	test_latency();
	test_early_shutdown();
	test_other_thread();
	for (size_t i = 0; ss_mixin_at(i); i++)
		test_from_handler(ss_mixin_at(i));
	test_signal();
	test_many();
	test_close_unserved();
	test_handle_request();
	test_no_stale_stop();
	tap_diag("took %.0f ms", (tu_now() - t0) * 1000);
	return tap_done();
}
