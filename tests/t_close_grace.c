/*
 * t_close_grace.c - closing a server with requests in flight.  With idle
 * clients (their handlers blocked reading) ss_server_close_within(s, 0.5)
 * gives up after the grace period, breaks the connections (clients see
 * EOF or a reset) and leaves no thread or child.  With block_on_close and
 * no limit, close waits for a slow request and its reply arrives whole.
 * Each cut request reaches handle_error once, as cut after the grace
 * period (not as the EOF or broken pipe its handler saw), under forking
 * too, where the child reports it.  The grace test runs under
 * threading, forking, pool, coroutine and threads+coroutine; the block
 * test under threading and forking.
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

#define IDLE 3
#define SLOW_LEN (256u * 1024u)

/* handle_error calls, and those that name the cut (any thread or child:
 * shared memory). */
enum { C_REPORTED, C_CUT, C_N };
static atomic_int *counts;

static void count_error(ss_server *s, ss_request *r, int err)
{
	atomic_fetch_add(&counts[C_REPORTED], 1);
	if (r && err == -ECANCELED &&
	    strstr(r->errmsg, "request cut after its 0.5 s grace period"))
		atomic_fetch_add(&counts[C_CUT], 1);
}

static bool closed_by_server(int fd)
{
	char buf[64];
	ssize_t n = tu_read_to_eof(fd, buf, sizeof(buf), TU_IO_TIMEOUT);

	return tu_unanswered(n);
}

static void test_grace(const ss_mixin *m)
{
	static ss_server_ops ops;
	int threads0 = tu_count_threads();
	ss_server *s;
	int fd[IDLE], i, seen = 0;
	const char *n = m->name;
	pthread_t t;
	double ms;
	bool gone;

	ops = ss_tcp_server_ops;
	ops.handle_error = count_error;
	atomic_store(&counts[C_REPORTED], 0);
	atomic_store(&counts[C_CUT], 0);
	s = tu_server(&ops, m, &tu_echo_handler, NULL);
	s->workers = m == &ss_pool_mixin ? IDLE : 2;	/* pool: none queued */
	tu_serve_start(s, &t);
	for (i = 0; i < IDLE; i++)
		fd[i] = tu_connect(s);
	ok(tu_wait_active(s, IDLE, TU_IO_TIMEOUT), "%s: %d idle requests in flight",
	   n, IDLE);
	tu_serve_stop(s, &t);
	ms = tu_close_within_ms(s, 0.5);
	tap_diag("%s: close_within(0.5) with %d idle clients took %.1f ms", n, IDLE, ms);
	ok(ms < 3000, "%s: close_within(0.5) returned in %.0f ms (< 3000)", n, ms);
	ok(ms >= 400, "%s: close_within(0.5) gave the requests their grace", n);
	for (i = 0; i < IDLE; i++) {
		seen += closed_by_server(fd[i]);
		close(fd[i]);
	}
	is_int(seen, IDLE, "%s: every idle client saw EOF or a reset", n);
	is_int(atomic_load(&counts[C_CUT]), IDLE,
	       "%s: each cut request reported once as cut after the grace period", n);
	is_int(atomic_load(&counts[C_REPORTED]), IDLE, "%s: and nothing else reported", n);
	is_int(ss_server_active_count(s), 0, "%s: active_count 0 after close", n);
	ok(tu_no_children(), "%s: no children left", n);
	gone = tu_wait_threads_at_most(threads0, 2.0);
	ok(gone, "%s: no threads left (%d, baseline %d)", n, tu_count_threads(),
	   threads0);
	ss_server_free(s);
}

struct closer {
	ss_server *s;
	atomic_bool done;
};

static void *closer_main(void *arg)
{
	struct closer *c = arg;

	ss_server_close(c->s);	/* close_grace < 0: no limit */
	atomic_store(&c->done, true);
	return NULL;
}

static bool fd_closed(void *arg)
{
	return tu_fd_closed(*(int *)arg);
}

/* The handler waits for its client, which sends only after close began:
 * close must wait for it, and the reply must arrive whole. */
static void test_block_on_close(const ss_mixin *m)
{
	static char msg[SLOW_LEN], out[SLOW_LEN + 16];
	ss_server *s = tu_server(&ss_tcp_server_ops, m, &tu_echo_handler, NULL);
	struct closer c = { .s = s };
	int fd, lfd = ss_server_fileno(s);
	const char *n = m->name;
	pthread_t t, ct;
	ssize_t got;

	memset(msg, 'a' + (int)strlen(n), sizeof(msg));
	atomic_init(&c.done, false);
	tu_serve_start(s, &t);
	fd = tu_connect(s);
	tu_wait_active(s, 1, TU_IO_TIMEOUT);
	tu_serve_stop(s, &t);
	pthread_create(&ct, NULL, closer_main, &c);
	ok(tu_wait_until(fd_closed, &lfd, TU_IO_TIMEOUT),
	   "%s block_on_close: close began (listener closed)", n);
	ok(!atomic_load(&c.done), "%s block_on_close: close waits for the request", n);
	got = tu_roundtrip_fd(fd, SOCK_STREAM, msg, sizeof(msg), out, sizeof(out));
	close(fd);
	ok(got == (ssize_t)sizeof(msg) && !memcmp(out, msg, sizeof(msg)),
	   "%s block_on_close: the reply arrived whole (%zd of %zu bytes)", n,
	   got, sizeof(msg));
	if (!tu_join_within(ct, TU_IO_TIMEOUT, NULL))
		tap_bail("%s: close never returned after the request ended", n);
	ok(atomic_load(&c.done), "%s block_on_close: close returned after the request",
	   n);
	is_int(ss_server_active_count(s), 0, "%s block_on_close: active_count 0", n);
	ss_server_free(s);
}

int main(void)
{
	double t0 = tu_now();

	tu_init();
	counts = tu_shared_counters(C_N);
	test_grace(&ss_threading_mixin);
	test_grace(&ss_forking_mixin);
	test_grace(&ss_pool_mixin);
	test_grace(&ss_coroutine_mixin);
	test_grace(&ss_threads_coroutine_mixin);
	test_block_on_close(&ss_threading_mixin);
	test_block_on_close(&ss_forking_mixin);
	tap_diag("took %.0f ms", (tu_now() - t0) * 1000);
	return tap_done();
}
