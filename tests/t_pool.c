/*
 * t_pool.c - the thread pool model (its echo, stop and leak checks are
 * t_echo_matrix's, as for every registered model).  A burst of 5,000
 * connects against 4 workers and a queue of 8: every request is served, none dropped, the queue bound held; a
 * shutdown while the loop waits for room in a full queue returns at once;
 * close with idle clients attached ends within the grace period, cutting
 * the queued requests with one handle_error each; with daemon_threads or
 * block_on_close false, close with an idle client returns at once and the
 * worker ends once its client leaves; a failing handler is reported once; a pthread_create failure at start is a clear error and
 * the server goes on.
 */
#include "tap.h"
#include "testutil.h"
#include "faultutil.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BURST 5000
#define BATCH 250

/* What handle_error saw (the pool runs in this process). */
static tu_errors reported = TU_ERRORS_INIT;
static atomic_int err_cut;	/* of them "request cut after ..." */
static atomic_int err_closing;	/* of them "server closing" (never ran) */
static atomic_int max_active;

static void count_error(ss_server *s, ss_request *r, int err)
{
	const char *msg = r ? r->errmsg : s->errmsg;

	atomic_fetch_add(&err_cut,
			 strstr(msg, "request cut after its 0.5 s grace period") != NULL);
	atomic_fetch_add(&err_closing, strstr(msg, "server closing") != NULL);
	tu_errors_add(&reported, msg);
}

/* How many handle_errors said the request was cut, and how many that
 * it never ran (read before errors() resets the counts). */
static int cut_errors(int *closing)
{
	if (closing)
		*closing = atomic_load(&err_closing);
	return atomic_load(&err_cut);
}

/* tu_errors_take, the cut and closing counts starting over too. */
static int errors(char *last, size_t len)
{
	atomic_store(&err_cut, 0);
	atomic_store(&err_closing, 0);
	return tu_errors_take(&reported, last, len);
}

/* A kind's ops with the counting handle_error. */
static const ss_server_ops *counted_ops(const ss_server_ops *base)
{
	static ss_server_ops ops[4];
	static int n;
	int i = n++ % 4;

	ops[i] = *base;
	ops[i].handle_error = count_error;
	return &ops[i];
}

/* --- the burst --- */

/* Echo, and note the most requests the pool held at once. */
static int watched_echo(ss_request *r)
{
	int now = (int)ss_server_active_count(r->server);
	int max = atomic_load(&max_active);

	while (now > max && !atomic_compare_exchange_weak(&max_active, &max, now))
		;
	return tu_echo(r);
}

static const ss_handler watched_handler = { .handle = watched_echo };

/* Wait for fd to be ready for events; false after TU_IO_TIMEOUT. */
static bool ready(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	int rc;

	do
		rc = poll(&p, 1, (int)(TU_IO_TIMEOUT * 1000));
	while (rc < 0 && errno == EINTR);
	return rc > 0;
}

/* One batch: n non-blocking connects at once, then each sends its
 * message and half-closes, then each echo is read back.  Returns the
 * number echoed correctly. */
static int burst_batch(const ss_server *s, int first, int n)
{
	const ss_addr *a = &s->address;
	int fd[BATCH], i, good = 0;
	char msg[32], out[64];
	ssize_t got;

	for (i = 0; i < n; i++) {
		fd[i] = socket(a->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd[i] < 0)
			tap_bail("socket: %s", strerror(errno));
		if (connect(fd[i], (const struct sockaddr *)&a->ss, a->len) < 0 &&
		    errno != EINPROGRESS)
			tap_bail("connect: %s", strerror(errno));
	}
	for (i = 0; i < n; i++) {
		snprintf(msg, sizeof(msg), "burst %d", first + i);
		if (ready(fd[i], POLLOUT))
			send(fd[i], msg, strlen(msg), MSG_NOSIGNAL);
		shutdown(fd[i], SHUT_WR);
	}
	for (i = 0; i < n; i++) {
		fcntl(fd[i], F_SETFL, 0);
		snprintf(msg, sizeof(msg), "burst %d", first + i);
		got = tu_read_to_eof(fd[i], out, sizeof(out), TU_IO_TIMEOUT);
		good += got == (ssize_t)strlen(msg) && !memcmp(out, msg, (size_t)got);
		close(fd[i]);
	}
	return good;
}

static void test_burst(void)
{
	ss_server *s = tu_server(counted_ops(&ss_tcp_server_ops), &ss_pool_mixin,
				 &watched_handler, NULL);
	int i, good = 0;
	pthread_t t;
	double t0;

	s->workers = 4;
	s->queue_size = 8;
	errors(NULL, 0);
	atomic_store(&max_active, 0);
	tu_serve_start(s, &t);
	t0 = tu_now();
	for (i = 0; i < BURST; i += BATCH)
		good += burst_batch(s, i, BATCH);
	tap_diag("%d connects in batches of %d: %.0f ms", BURST, BATCH,
		 (tu_now() - t0) * 1000);
	is_int(good, BURST, "burst: every one of %d connects echoed, none dropped", BURST);
	is_int(errors(NULL, 0), 0, "burst: no handle_error");
	ok(atomic_load(&max_active) <= 4 + 8,
	   "burst: at most workers + queue_size held at once (%d <= 12)",
	   atomic_load(&max_active));
	tu_serve_stop(s, &t);
	ss_server_free(s);
}

/* --- stopping --- */

/* With workers 1 and queue_size 1, a third idle client makes the loop
 * wait for room; shutdown must still stop it at once, and close must cut
 * the two waiting requests after the grace period. */
static bool accepted_three(void *arg)
{
	return fu_accepted() >= 3 &&
	       ss_server_active_count((ss_server *)arg) == 2;
}

static void test_full_queue_stop(void)
{
	ss_server *s;
	int fd[3], i, seen = 0, errs, cut, closing;
	char buf[16];
	pthread_t t;
	double t0, ms;

	fu_install();
	s = tu_server(counted_ops(&ss_tcp_server_ops), &ss_pool_mixin,
		      &tu_echo_handler, NULL);
	s->workers = 1;
	s->queue_size = 1;
	errors(NULL, 0);
	tu_serve_start(s, &t);
	for (i = 0; i < 3; i++)
		fd[i] = tu_connect(s);
	ok(tu_wait_until(accepted_three, s, TU_IO_TIMEOUT),
	   "full queue: 1 running, 1 queued, the third accepted and waiting for room");
	t0 = tu_now();
	tu_serve_stop(s, &t);
	ms = (tu_now() - t0) * 1000;
	ok(ms < 1000, "full queue: shutdown stopped the loop in %.1f ms", ms);
	ms = tu_close_within_ms(s, 0.5);
	ok(ms >= 400 && ms < 3000, "full queue: close_within(0.5) took %.0f ms", ms);
	for (i = 0; i < 3; i++) {
		ssize_t n = tu_read_to_eof(fd[i], buf, sizeof(buf), TU_IO_TIMEOUT);

		seen += tu_unanswered(n);
		close(fd[i]);
	}
	is_int(seen, 3, "full queue: every client saw EOF or a reset");
	cut = cut_errors(&closing);
	errs = errors(NULL, 0);
	is_int(errs, 3, "full queue: the running and the 2 queued requests reported once each");
	is_int(cut, 1, "full queue: the running one as cut after the grace period");
	is_int(closing, 2, "full queue: the queued ones as closed by the server unrun");
	ss_server_free(s);
	fu_reset();
}

static void test_idle_close(void)
{
	int threads0 = tu_count_threads(), fd[6], i, seen = 0;
	ss_server *s = tu_server(counted_ops(&ss_tcp_server_ops), &ss_pool_mixin,
				 &tu_echo_handler, NULL);
	pthread_t t;
	double ms;

	s->workers = 4;
	errors(NULL, 0);
	tu_serve_start(s, &t);
	for (i = 0; i < 6; i++)
		fd[i] = tu_connect(s);
	ok(tu_wait_active(s, 6, TU_IO_TIMEOUT), "idle: 4 running + 2 queued requests");
	tu_serve_stop(s, &t);
	ms = tu_close_within_ms(s, 0.5);
	tap_diag("pool: close_within(0.5) with 6 idle clients took %.1f ms", ms);
	ok(ms >= 400 && ms < 3000, "idle: close_within(0.5) returned in %.0f ms", ms);
	for (i = 0; i < 6; i++) {
		char buf[16];
		ssize_t n = tu_read_to_eof(fd[i], buf, sizeof(buf), TU_IO_TIMEOUT);

		seen += tu_unanswered(n);
		close(fd[i]);
	}
	is_int(seen, 6, "idle: every client saw EOF or a reset");
	is_int(cut_errors(NULL), 4, "idle: the 4 running requests reported as cut after the grace");
	is_int(errors(NULL, 0), 6, "idle: with the 2 queued ones, 6 reports");
	is_int(ss_server_active_count(s), 0, "idle: active_count 0");
	ok(tu_wait_threads_at_most(threads0, 5.0), "idle: no threads left");
	ss_server_free(s);
}

/* --- errors --- */

static int fail_on_bad(ss_request *r)
{
	char buf[64];
	ssize_t n = ss_read_some(r, buf, sizeof(buf) - 1);

	if (n > 0 && !memcmp(buf, "bad", 3))
		return ss_request_error(r, -EPROTO, "bad request");
	while (n > 0) {
		if (ss_write_all(r, buf, (size_t)n) < 0)
			return -EIO;
		n = ss_read_some(r, buf, sizeof(buf));
	}
	return (int)n;
}

static const ss_handler failing_handler = { .handle = fail_on_bad };

static void test_handler_error(void)
{
	ss_server *s = tu_server(counted_ops(&ss_tcp_server_ops), &ss_pool_mixin,
				 &failing_handler, NULL);
	char last[SS_ERRMSG_MAX], out[8];
	pthread_t t;

	errors(NULL, 0);
	tu_serve_start(s, &t);
	is_int(tu_roundtrip(s, "bad", 3, out, sizeof(out)), 0, "error: bad request closed");
	ok(tu_echo_once(s, "good"), "error: the next request is served");
	tu_serve_stop(s, &t);
	ss_server_close(s);
	is_int(errors(last, sizeof(last)), 1, "error: handle_error called once");
	ok(strstr(last, "bad request") != NULL, "error: message '%s'", last);
	ss_server_free(s);
}

static void test_start_failure(void)
{
	ss_server *s;
	char last[SS_ERRMSG_MAX], out[8];
	pthread_t t;
	ssize_t n;

	fu_install();
	s = tu_server(counted_ops(&ss_tcp_server_ops), &ss_pool_mixin,
		      &tu_echo_handler, NULL);
	errors(NULL, 0);
	fu_fail_next(FU_PTHREAD_CREATE, -1, EAGAIN);
	tu_serve_start(s, &t);
	n = tu_roundtrip(s, "x", 1, out, sizeof(out));
	ok(tu_unanswered(n), "pthread_create fails: the request is closed unanswered (%zd)", n);
	is_int(errors(last, sizeof(last)), 1, "pthread_create fails: one handle_error");
	ok(strstr(last, "pool: start thread 1 of 16") && strstr(last, "unavailable"),
	   "pthread_create fails: message '%s'", last);
	fu_fail_next(FU_PTHREAD_CREATE, 0, 0);
	ok(tu_echo_once(s, "again"), "pthread_create works again: served");
	fu_fail_every(FU_PTHREAD_CREATE, 0, 0);
	tu_serve_stop(s, &t);
	ss_server_free(s);
	fu_reset();
}

int main(void)
{
	double t0 = tu_now();

	tu_init();
	test_burst();
	test_full_queue_stop();
	test_idle_close();
	tu_check_prompt_close(&ss_pool_mixin, true, "pool daemon_threads");
	tu_check_prompt_close(&ss_pool_mixin, false, "pool block_on_close false");
	test_handler_error();
	test_start_failure();
	tap_diag("took %.0f ms", (tu_now() - t0) * 1000);
	return tap_done();
}
