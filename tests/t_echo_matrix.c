/*
 * t_echo_matrix.c - the checks every model gets by being registered: each
 * model of the library's list (ss_mixin_at) under each server kind (TCP,
 * UDP, UnixStream, UnixDatagram):
 *   - ss_server_shutdown stops serve_forever at once, although its poll
 *     interval is 10 s, and serve_forever returns 0;
 *   - echoes text, binary with NULs, the largest message of the kind, a
 *     line, one byte and nothing, then 40 clients one after another;
 *   - serves CLIENTS clients at once (their handlers all running together,
 *     where the model runs several requests at once), after which nothing
 *     is in flight and nothing was reported to handle_error;
 *   - ss_server_close_within(GRACE) with idle clients, while serve_forever
 *     still runs: stream requests in their handlers get their grace, are
 *     then cut (each reported once as cut, each client seeing EOF or a
 *     reset); a datagram server, with nothing in flight, closes at once;
 *     serve_forever has returned 0 by then;
 *   - leaves no fd, thread or child and nothing in flight.
 * What a pair cannot do by design is a TAP skip saying why
 * (unsupported_reason, serial_reason).  Every pair prints PAIR_CHECKS lines, so the plan is
 * known before the first test.  Also TCP on "[::1]:0" and "localhost:0".
 */
#include "tap.h"
#include "testutil.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define BIG_STREAM (64u * 1024u + 7u)	/* 64 KiB and change */
#define BIG_UDP 65507u			/* the largest IPv4 UDP payload */
#define BIG_UNIX_DGRAM 65536u		/* default max_packet_size */

#define SEQUENTIAL 40	/* clients one after another */
#define CLIENTS 3	/* clients at once; also `workers` */
#define LONG_POLL 10.0	/* serve_forever's poll interval in check_shutdown */
#define POLL 0.1	/* and elsewhere (the forking model reaps its
			   children on a loop turn) */
#define GRACE 0.3	/* close_within's grace, seconds */
#define CUT_MSG "request cut after its 0.3 s grace period"

#define PAIR_CHECKS 26	/* lines each pair prints */
#define OTHER_CHECKS 4	/* the named-address checks */

static const ss_server_ops *const kinds[] = {
	&ss_tcp_server_ops, &ss_udp_server_ops,
	&ss_unix_stream_server_ops, &ss_unix_dgram_server_ops,
};
#define NKINDS (sizeof kinds / sizeof kinds[0])

/* ------------------------------------------------------------------ */
/* What a pair cannot do by design                                     */
/* ------------------------------------------------------------------ */

/* Why model m does not serve kind at all (NULL: it does).  Every model of
 * the registry serves every kind today; a model that cannot must refuse
 * the pair in ss_server_new with a message, which the matrix checks
 * before skipping the pair's other checks with this reason. */
static const char *unsupported_reason(const ss_mixin *m, const ss_server_ops *kind)
{
	return NULL;
}

/* Why model m runs one request at a time (NULL: it runs CLIENTS at once
 * when workers = CLIENTS). */
static const char *serial_reason(const ss_mixin *m)
{
	if (m == &ss_sync_mixin)
		return "sync runs one request at a time, inline in the loop";
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Handlers and reports, counted in memory children and workers share  */
/* ------------------------------------------------------------------ */

static struct reports {
	atomic_int started;	/* handler setups */
	atomic_int ended;	/* handler finishes */
	atomic_int cut;		/* requests reported cut after GRACE */
	atomic_int other;	/* every other report */
	char first_other[SS_ERRMSG_MAX];
} *rep;

static int count_start(ss_request *r)
{
	atomic_fetch_add(&rep->started, 1);
	return 0;
}

static int count_end(ss_request *r)
{
	atomic_fetch_add(&rep->ended, 1);
	return 0;
}

/* The echo handler, counting the requests in their handlers (under every
 * model: ss_server_active_count is 0 under sync, whose requests run
 * inside process_request). */
static const ss_handler echo = {
	.setup = count_start, .handle = tu_echo, .finish = count_end,
};

static bool running_is(void *arg)
{
	return atomic_load(&rep->started) - atomic_load(&rep->ended) == *(int *)arg;
}

/* Wait until n requests are in their handlers. */
static bool wait_running(int n)
{
	return tu_wait_until(running_is, &n, TU_IO_TIMEOUT);
}

static void count_report(ss_server *s, ss_request *r, int err)
{
	if (r && err == -ECANCELED && strstr(r->errmsg, CUT_MSG))
		atomic_fetch_add(&rep->cut, 1);
	else if (atomic_fetch_add(&rep->other, 1) == 0)
		snprintf(rep->first_other, sizeof rep->first_other, "%s",
			 r ? r->errmsg : s->errmsg);
}

static void reports_reset(void)
{
	atomic_store(&rep->started, 0);
	atomic_store(&rep->ended, 0);
	atomic_store(&rep->cut, 0);
	atomic_store(&rep->other, 0);
	rep->first_other[0] = '\0';
}

/* kinds[k] with the counting handle_error. */
static const ss_server_ops *counted(size_t k)
{
	static ss_server_ops ops[NKINDS];

	ops[k] = *kinds[k];
	ops[k].handle_error = count_report;
	return &ops[k];
}

/* ------------------------------------------------------------------ */
/* One pair                                                            */
/* ------------------------------------------------------------------ */

struct pair {
	char tag[64];		/* "kind/model" */
	bool stream;
	const char *serial;	/* serial_reason(m) */
	ss_server *s;
	pthread_t t;
	int fds0, threads0, lfd;
	bool lfd_closed;	/* seen right after the close */
};

static unsigned char out[256 * 1024];

static void fill_binary(unsigned char *buf, size_t n, unsigned seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		buf[i] = (unsigned char)((i * 31u + seed + (i >> 9)) & 0xff);
}

/*
 * A server of its own, serving with poll interval LONG_POLL, stops on
 * ss_server_shutdown long before the interval is over, and serve_forever
 * returns 0.  (A server of its own: a serve_forever that follows a
 * shutdown on the same server can return at once, the stop's wakeup
 * arriving after the first loop consumed the stop.)  3 checks.
 */
static void check_shutdown(struct pair *p, const ss_server_ops *ops, const ss_mixin *m)
{
	ss_server *s = tu_server(ops, m, &echo, NULL);
	double t0, ms;
	void *ret = NULL;
	bool stopped;
	pthread_t t;

	s->workers = CLIENTS;
	tu_serve_start_interval(s, &t, LONG_POLL);
	ok(tu_echo_once(s, "serving"), "%s: serves", p->tag);
	t0 = tu_now();
	ss_server_shutdown(s);
	stopped = tu_join_within(t, TU_IO_TIMEOUT, &ret);
	ms = (tu_now() - t0) * 1000;
	if (!stopped)
		tap_bail("%s: serve_forever still runs %.0f s after shutdown", p->tag,
			 TU_IO_TIMEOUT);
	ok(ms < 1000, "%s: shutdown stopped serve_forever in %.1f ms (< 1000, poll "
	   "interval %.0f s)", p->tag, ms, LONG_POLL);
	is_int((intptr_t)ret, 0, "%s: serve_forever returned 0", p->tag);
	ss_server_free(s);
}

/* One echo round trip on a fresh client; checks the reply byte for byte. */
static void check_echo(struct pair *p, const void *msg, size_t n, const char *what)
{
	ssize_t got = tu_roundtrip(p->s, msg, n, (char *)out, sizeof(out));
	size_t i = 0;

	if (got == (ssize_t)n)
		while (i < n && out[i] == ((const unsigned char *)msg)[i])
			i++;
	if (!ok(got == (ssize_t)n && i == n, "%s: %s echo of %zu bytes", p->tag,
		what, n)) {
		if (got < 0)
			tap_diag("    error: %s", strerror((int)-got));
		else
			tap_diag("    got %zd bytes, expected %zu; first difference at %zu",
				 got, n, i);
	}
}

static size_t big_size(const ss_server_ops *ops)
{
	if (ops->socktype == SOCK_STREAM)
		return BIG_STREAM;
	return ops->family == AF_UNIX ? BIG_UNIX_DGRAM : BIG_UDP;
}

/* Six round trips of a few sizes (the empty message too): 6 checks. */
static void check_sizes(struct pair *p)
{
	static unsigned char big[BIG_STREAM];
	const unsigned char bin[] = { 0, 1, 2, 0xff, 0, '\n', '\r', 0x80, 0 };
	char line[64];
	size_t nbig = big_size(p->s->ops);

	fill_binary(big, nbig, 7);
	check_echo(p, "hello", 5, "text");
	check_echo(p, bin, sizeof(bin), "binary with NULs");
	check_echo(p, big, nbig, "maximum-size");
	snprintf(line, sizeof(line), "line %d\n", (int)getpid());
	check_echo(p, line, strlen(line), "line");
	check_echo(p, "x", 1, "one-byte");
	check_echo(p, "", 0, "empty");
}

/* SEQUENTIAL clients one after another: 1 check. */
static void check_sequential(struct pair *p)
{
	char msg[64];	/* tu_echo_once takes at most 63 bytes */
	int i, good = 0;

	for (i = 0; i < SEQUENTIAL; i++) {
		snprintf(msg, sizeof(msg), "%.50s %d", p->tag, i);
		good += tu_echo_once(p->s, msg);
	}
	is_int(good, SEQUENTIAL, "%s: %d sequential clients echoed", p->tag, SEQUENTIAL);
}

/* Whether fd brings back exactly msg: its bytes on a stream that stays
 * open, or one datagram. */
static bool echoed(int fd, bool stream, const char *msg)
{
	size_t n = strlen(msg);
	char buf[64];
	ssize_t got;

	if (stream)
		got = tu_read_exact(fd, buf, n, TU_IO_TIMEOUT);
	else if (tu_wait_readable(fd, TU_IO_TIMEOUT) < 0)
		got = -ETIMEDOUT;
	else
		got = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
	return got == (ssize_t)n && !memcmp(buf, msg, n);
}

/* Whether the stream fd, half-closed now, brings back exactly msg (n
 * bytes; 0 when it was echoed already) and then EOF. */
static bool echoed_to_eof(int fd, const char *msg, size_t n)
{
	shutdown(fd, SHUT_WR);
	return tu_read_to_eof(fd, out, sizeof out, TU_IO_TIMEOUT) == (ssize_t)n &&
	       !memcmp(out, msg, n);
}

/*
 * CLIENTS clients connect and each sends msg[i].  Under a model that runs
 * several requests at once, their handlers all run together (*at_once)
 * and each echo comes back while every client is still open; then each
 * half-closes and sees EOF.  A serial model serves them in turn once they
 * have half-closed.  A datagram client gets its own reply.  Returns how
 * many clients got their echo (and EOF).
 */
static int clients_at_once(struct pair *p, char msg[CLIENTS][32], bool *at_once)
{
	int fd[CLIENTS], i, good = 0;
	bool inline_first = p->stream && !p->serial;

	for (i = 0; i < CLIENTS; i++) {
		fd[i] = tu_connect(p->s);
		if (tu_send_all(fd[i], msg[i], strlen(msg[i])) < 0)
			tap_bail("%s: client %d cannot send", p->tag, i);
	}
	*at_once = inline_first && wait_running(CLIENTS);
	for (i = 0; i < CLIENTS; i++) {
		if (!p->stream)
			good += echoed(fd[i], false, msg[i]);
		else if (inline_first)
			good += echoed(fd[i], true, msg[i]) && echoed_to_eof(fd[i], "", 0);
		else
			good += echoed_to_eof(fd[i], msg[i], strlen(msg[i]));
	}
	for (i = 0; i < CLIENTS; i++)
		close(fd[i]);
	return good;
}

/* CLIENTS clients at once (clients_at_once), then nothing in flight, and
 * nothing reported to handle_error since the pair began.  4 checks. */
static void check_concurrent(struct pair *p)
{
	char msg[CLIENTS][32];
	bool at_once;
	int i;

	for (i = 0; i < CLIENTS; i++)
		snprintf(msg[i], sizeof msg[i], "client %d of %d", i, CLIENTS);
	is_int(clients_at_once(p, msg, &at_once), CLIENTS,
	       "%s: %d clients at once each got its own echo%s", p->tag, CLIENTS,
	       p->stream ? " and EOF" : "");
	if (!p->stream)
		tap_skip(1, "%s: a datagram request ends with its reply: none stays in flight",
			 p->tag);
	else if (p->serial)
		tap_skip(1, "%s: %s", p->tag, p->serial);
	else
		ok(at_once, "%s: %d handlers running at once", p->tag, CLIENTS);
	ok(tu_wait_active(p->s, 0, TU_IO_TIMEOUT), "%s: nothing in flight once they left",
	   p->tag);
	if (!is_int(atomic_load(&rep->other) + atomic_load(&rep->cut), 0,
		    "%s: nothing reported to handle_error while serving", p->tag))
		tap_diag("    first report: %s", rep->first_other);
}

struct in_flight {
	struct pair *p;
	int n;
};

static bool in_flight_is(void *arg)
{
	struct in_flight *f = arg;

	return running_is(&f->n) &&
	       (f->p->serial || ss_server_active_count(f->p->s) == (size_t)f->n);
}

/* Wait until n requests are in their handlers and the server counts n in
 * flight (but under a serial model, whose requests run inside
 * process_request and are not counted): both at once, as a forked child
 * may run its handler before the parent has counted it. */
static bool wait_in_flight(struct pair *p, int n)
{
	struct in_flight f = { p, n };

	return tu_wait_until(in_flight_is, &f, TU_IO_TIMEOUT);
}

/*
 * ss_server_close_within(GRACE) with CLIENTS idle clients while
 * serve_forever runs.  A stream server holds the requests it took (one
 * under a serial model, the others waiting in the backlog), gives them
 * their grace, then cuts them: each is reported once as cut and every
 * client sees EOF or a reset.  A datagram server has nothing in flight and
 * closes at once, reporting nothing.  serve_forever has returned 0 when
 * the close returns.  7 checks.
 */
static void check_idle_close(struct pair *p)
{
	int fd[CLIENTS], i, held = p->stream ? (p->serial ? 1 : CLIENTS) : 0, seen = 0;
	void *ret = (void *)1;
	bool joined;
	double ms;
	char b;

	reports_reset();
	for (i = 0; i < CLIENTS; i++)
		fd[i] = tu_connect(p->s);
	ok(wait_in_flight(p, held), "%s: %d of %d idle clients' requests in their handlers",
	   p->tag, held, CLIENTS);
	ms = tu_close_within_ms(p->s, GRACE);
	p->lfd_closed = tu_fd_closed(p->lfd);
	joined = tu_join_within(p->t, 1.0, &ret);
	if (p->stream)
		ok(ms >= GRACE * 1000 - 50 && ms < GRACE * 1000 + 2700,
		   "%s: close_within(%.1f) gave them their grace and ended: %.0f ms",
		   p->tag, GRACE, ms);
	else
		ok(ms < 1000, "%s: close_within(%.1f) with nothing in flight ended at once: "
		   "%.0f ms", p->tag, GRACE, ms);
	ok(joined && ret == NULL, "%s: serve_forever returned 0 by then", p->tag);
	if (!joined)
		tap_bail("%s: serve_forever still runs after close", p->tag);
	for (i = 0; i < CLIENTS; i++) {
		if (p->stream)
			seen += tu_unanswered(tu_read_to_eof(fd[i], &b, 1, TU_IO_TIMEOUT));
		else
			seen += recv(fd[i], &b, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN;
		close(fd[i]);
	}
	is_int(seen, CLIENTS, "%s: every idle client %s", p->tag,
	       p->stream ? "saw EOF or a reset" : "got nothing");
	is_int(atomic_load(&rep->cut), held, "%s: each request cut reported once as cut "
	       "after the grace period", p->tag);
	if (!is_int(atomic_load(&rep->other), 0, "%s: and nothing else reported", p->tag))
		tap_diag("    first report: %s", rep->first_other);
	is_int(ss_server_active_count(p->s), 0, "%s: nothing in flight after close", p->tag);
}

/* After the close: the listener closed, no child, no thread; after free
 * the fd count back to where it was.  4 checks. */
static void check_leaks(struct pair *p)
{
	bool threads;
	int fds;

	ok(p->lfd_closed, "%s: listening fd %d closed", p->tag, p->lfd);
	ok(tu_no_children(), "%s: no child left", p->tag);
	threads = tu_wait_threads_at_most(p->threads0, 5.0);
	ok(threads, "%s: threads back to %d (now %d)", p->tag, p->threads0,
	   tu_count_threads());
	ss_server_free(p->s);
	fds = tu_count_fds();	/* the wakeup pipe lives until free */
	if (!is_int(fds, p->fds0, "%s: fd count back to baseline after free", p->tag))
		tap_diag("    leaked %d fds", fds - p->fds0);
}

/* Every check of kinds[k] under model m: PAIR_CHECKS lines. */
static void one_pair(size_t k, const ss_mixin *m)
{
	struct pair p = { .stream = kinds[k]->socktype == SOCK_STREAM,
			  .serial = serial_reason(m) };
	const char *why = unsupported_reason(m, kinds[k]);
	ss_error err = { 0 };
	double t0 = tu_now();

	snprintf(p.tag, sizeof p.tag, "%s/%s", kinds[k]->name, m->name);
	tap_diag("--- %s", p.tag);
	p.fds0 = tu_count_fds();
	p.threads0 = tu_count_threads();
	reports_reset();
	p.s = tu_server_try(counted(k), m, &echo, NULL, &err);
	if (why) {
		ok(!p.s && err.code < 0 && err.msg[0], "%s: refused: %s", p.tag, err.msg);
		ss_server_free(p.s);
		tap_skip(PAIR_CHECKS - 1, "%s: %s", p.tag, why);
		return;
	}
	if (!ok(p.s != NULL, "%s: built", p.tag)) {
		tap_diag("    %s", err.msg);
		tap_skip(PAIR_CHECKS - 1, "%s did not build", p.tag);
		return;
	}
	p.s->workers = CLIENTS;
	p.lfd = ss_server_fileno(p.s);
	check_shutdown(&p, counted(k), m);
	tu_serve_start_interval(p.s, &p.t, POLL);
	check_sizes(&p);
	check_sequential(&p);
	check_concurrent(&p);
	check_idle_close(&p);
	check_leaks(&p);
	tap_diag("%s: %.0f ms", p.tag, (tu_now() - t0) * 1000);
}

/* ------------------------------------------------------------------ */
/* TCP on named addresses                                              */
/* ------------------------------------------------------------------ */

static bool have_ipv6_loopback(void)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool yes;

	if (fd < 0)
		return false;
	yes = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return yes;
}

/* A TCP echo server on a named address; one round trip.  2 checks. */
static void tcp_on(const char *addr)
{
	char buf[SS_ADDRSTRLEN];
	struct pair p = { .stream = true };
	pthread_t t;

	p.s = tu_server(&ss_tcp_server_ops, NULL, &tu_echo_handler, addr);
	snprintf(p.tag, sizeof p.tag, "%s", addr);
	tap_diag("%s bound to %s", addr, ss_server_address(p.s, buf, sizeof(buf)));
	ok(ss_addr_port(&p.s->address) > 0, "%s: real port reported", addr);
	tu_serve_start(p.s, &t);
	check_echo(&p, "over the named address", 22, "text");
	tu_serve_stop(p.s, &t);
	ss_server_free(p.s);
}

int main(void)
{
	double t0 = tu_now();
	size_t k, i, nmodels = 0;

	tu_init();
	rep = mmap(NULL, sizeof *rep, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		   -1, 0);
	if (rep == MAP_FAILED)
		tap_bail("mmap: %s", strerror(errno));
	while (ss_mixin_at(nmodels))
		nmodels++;
	if (nmodels == 0)
		tap_bail("the registry lists no model");
	tap_plan((int)(nmodels * NKINDS * PAIR_CHECKS + OTHER_CHECKS));
	for (i = 0; i < nmodels; i++)
		for (k = 0; k < NKINDS; k++)
			one_pair(k, ss_mixin_at(i));
	if (have_ipv6_loopback())
		tcp_on("[::1]:0");
	else
		tap_skip(2, "::1 is not available");
	tcp_on("localhost:0");
	tap_diag("took %.0f ms", (tu_now() - t0) * 1000);
	return tap_done();
}
