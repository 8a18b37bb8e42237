/*
 * t_bigwrite.c - big transfers while signals interrupt the I/O.  A
 * handler writes 16 MiB + 1 bytes with one ss_write_all while SIGALRM
 * (every 1 ms, installed without SA_RESTART) interrupts it and the client
 * reads slowly at first, so send blocks and is cut short; the client
 * checks every byte.  Threading TCP, forking TCP and threading unix
 * stream.  Then the other way: the client sends 16 MiB + 1 bytes, the
 * handler takes them with one ss_read_exact under the same signals and
 * answers with a checksum.
 *
 * SIGALRM is blocked in every thread but the handler's (which unblocks it
 * for the transfer), so the signals land on the I/O under test.  Interval
 * timers do not survive fork, so the handler starts its own.
 */
#include <socketserver.h>
#include "tap.h"
#include "faultutil.h"
#include "testutil.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define BIG (16u * 1024u * 1024u + 1u)

/* ThreadSanitizer defers signal handlers, and in a child forked from a
 * threaded process never runs them during the transfer: the data still
 * has to arrive, but the "interrupted" count is not checked there. */

/* Check that SIGALRM interrupted the I/O (count seen by the handler). */
static void check_alarms(const ss_server_ops *ops, const ss_mixin *m,
			 const char *io, int seen, double took)
{
	if (TU_TSAN && m == &ss_forking_mixin) {
		tap_skip(1, "signals in forked children under TSan");
		return;
	}
	ok(seen > 0, "%s %s: SIGALRM interrupted the %s (%d times, %.2f s)",
	   m->name, ops->name, io, seen, took);
}

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
	alarms++;
}

/* SIGALRM every 1 ms in this thread while on, none when off. */
static void alarms_on(bool on)
{
	struct itimerval it = { 0 };
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGALRM);
	if (on) {
		alarms = 0;
		it.it_interval.tv_usec = 1000;
		it.it_value.tv_usec = 1000;
		setitimer(ITIMER_REAL, &it, NULL);
		pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	} else {
		pthread_sigmask(SIG_BLOCK, &set, NULL);
		setitimer(ITIMER_REAL, &it, NULL);
	}
}

/* FNV-1a over buf. */
static unsigned long long fnv1a(const unsigned char *buf, size_t len)
{
	unsigned long long h = 1469598103934665603ull;

	for (size_t i = 0; i < len; i++)
		h = (h ^ buf[i]) * 1099511628211ull;
	return h;
}

/* ------------------------------------------------------------------ */
/* Server -> client                                                    */
/* ------------------------------------------------------------------ */

/* One ss_write_all of BIG pattern bytes under SIGALRM, then a trailer
 * saying how many signals came. */
static int h_write_big(ss_request *r)
{
	unsigned char *buf = malloc(BIG);
	char trailer[32];
	ssize_t n;
	int rc, len;

	if (!buf)
		return -ENOMEM;
	fu_fill(buf, BIG, 0);
	alarms_on(true);
	n = ss_write_all(r, buf, BIG);
	rc = n < 0 ? (int)n : ss_flush(r);
	alarms_on(false);
	free(buf);
	if (n >= 0 && n != (ssize_t)BIG)
		return ss_request_error(r, -EIO, "write_all returned %zd", n);
	if (rc < 0)
		return rc;
	len = snprintf(trailer, sizeof trailer, "alarms=%d\n", (int)alarms);
	return ss_write_all(r, trailer, (size_t)len) < 0 ? -EIO : 0;
}

/* Read slowly at first (so the server's send blocks with full buffers),
 * then everything to EOF.  Returns the count read into buf. */
static ssize_t read_slowly(int fd, unsigned char *buf, size_t cap)
{
	size_t got = 0;
	ssize_t n;

	for (int i = 0; i < 10; i++) {
		poll(NULL, 0, 20);	/* pacing, not synchronisation */
		n = recv(fd, buf + got, 16384, 0);
		if (n <= 0)
			return n < 0 ? -errno : (ssize_t)got;
		got += (size_t)n;
	}
	n = tu_read_to_eof(fd, buf + got, cap - got, 20.0);
	return n < 0 ? n : (ssize_t)(got + (size_t)n);
}

static void server_writes(const ss_server_ops *ops, const ss_mixin *m)
{
	static const ss_handler h = { .handle = h_write_big };
	ss_server *s = tu_server(ops, m, &h, NULL);
	unsigned char *buf = malloc(BIG + 64);
	double t0 = tu_now();
	pthread_t th;
	ssize_t n;
	int fd, alarms_seen = -1;

	tu_serve_start(s, &th);
	fd = tu_connect(s);
	n = read_slowly(fd, buf, BIG + 64);
	close(fd);
	ok(n >= (ssize_t)BIG, "%s %s: 16 MiB + 1 written by one ss_write_all "
	   "arrive (%zd bytes)", m->name, ops->name, n);
	is_int(n >= (ssize_t)BIG ? fu_check(buf, BIG, 0) : 0, n >= (ssize_t)BIG ?
	       BIG : 0, "%s %s: every byte is right", m->name, ops->name);
	if (n >= (ssize_t)BIG) {
		buf[n < (ssize_t)BIG + 63 ? n : (ssize_t)BIG + 63] = '\0';
		sscanf((char *)buf + BIG, "alarms=%d", &alarms_seen);
	}
	check_alarms(ops, m, "writer", alarms_seen, tu_now() - t0);
	free(buf);
	tu_serve_stop(s, &th);
	ss_server_free(s);
}

/* ------------------------------------------------------------------ */
/* Client -> server                                                    */
/* ------------------------------------------------------------------ */

/* One ss_read_exact of BIG bytes under SIGALRM; reply with the count,
 * the checksum and whether the pattern held. */
static int h_read_big(ss_request *r)
{
	unsigned char *buf = malloc(BIG);
	char reply[128];
	ssize_t n;
	int len;

	if (!buf)
		return -ENOMEM;
	alarms_on(true);
	n = ss_read_exact(r, buf, BIG);
	alarms_on(false);
	len = snprintf(reply, sizeof reply, "%zd %llx %d %d", n,
		       n > 0 ? fnv1a(buf, (size_t)n) : 0ull,
		       n == (ssize_t)BIG && fu_check(buf, BIG, 0) == BIG,
		       (int)alarms);
	free(buf);
	if (n < 0)
		return (int)n;
	return ss_write_all(r, reply, (size_t)len) < 0 ? -EIO : 0;
}

/* Send slowly at first (so the handler's reads block and are
 * interrupted), then the rest at once.  0 or -errno. */
static int send_slowly(int fd, const unsigned char *buf, size_t len)
{
	size_t sent = 0;
	int rc;

	for (int i = 0; i < 10 && sent + 16384 <= len; i++, sent += 16384) {
		rc = tu_send_all(fd, buf + sent, 16384);
		if (rc < 0)
			return rc;
		poll(NULL, 0, 20);	/* pacing, not synchronisation */
	}
	return tu_send_all(fd, buf + sent, len - sent);
}

static void client_writes(const ss_server_ops *ops, const ss_mixin *m)
{
	static const ss_handler h = { .handle = h_read_big };
	ss_server *s = tu_server(ops, m, &h, NULL);
	unsigned char *buf = malloc(BIG);
	char want[128], reply[128];
	double t0 = tu_now();
	pthread_t th;
	ssize_t n;
	int fd, alarms_seen = -1;

	fu_fill(buf, BIG, 0);
	snprintf(want, sizeof want, "%u %llx 1 ", BIG, fnv1a(buf, BIG));
	tu_serve_start(s, &th);
	fd = tu_connect(s);
	ok(send_slowly(fd, buf, BIG) == 0, "%s %s: client sends 16 MiB + 1",
	   m->name, ops->name);
	shutdown(fd, SHUT_WR);
	n = tu_read_to_eof(fd, reply, sizeof reply - 1, 20.0);
	reply[n > 0 ? n : 0] = '\0';
	close(fd);
	ok(!strncmp(reply, want, strlen(want)), "%s %s: one ss_read_exact gets "
	   "every byte (got '%s', want '%s<alarms>')", m->name, ops->name,
	   reply, want);
	sscanf(reply, "%*s %*s %*s %d", &alarms_seen);
	check_alarms(ops, m, "reader", alarms_seen, tu_now() - t0);
	free(buf);
	tu_serve_stop(s, &th);
	ss_server_free(s);
}

int main(void)
{
	struct sigaction sa = { .sa_handler = on_alarm };	/* no SA_RESTART */
	sigset_t set;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	sigemptyset(&set);
	sigaddset(&set, SIGALRM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);	/* inherited by every thread */

	server_writes(&ss_tcp_server_ops, &ss_threading_mixin);
	server_writes(&ss_tcp_server_ops, &ss_forking_mixin);
	server_writes(&ss_unix_stream_server_ops, &ss_threading_mixin);
	client_writes(&ss_tcp_server_ops, &ss_threading_mixin);
	client_writes(&ss_tcp_server_ops, &ss_forking_mixin);
	client_writes(&ss_unix_stream_server_ops, &ss_threading_mixin);
	return tap_done();
}
