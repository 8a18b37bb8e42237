/*
 * t_tls_misbehave.c - clients that do not speak TLS properly cost only
 * their own request.  With a TLS echo server whose handshake_timeout is
 * 0.5 s, a silent client, one that stops in the middle of its
 * ClientHello, a plain-text client, an HTTP client, a garbage client and
 * a client offering only TLS 1.1 are connected at the same time as a
 * well-behaved client, whose 64 KiB echo completes before the silent
 * one's timeout.  Each bad client produces exactly one handle_error with
 * its address and a readable reason (the timeout for the silent ones, at
 * once for the others), and the server keeps serving.  Under threading
 * and forking (handle_error counted in shared memory); under sync only
 * the silent client, whose cost the handshake timeout bounds.
 */
#include "tap.h"
#if !SS_HAVE_TLS
int main(void)
{
	tap_skip_all("built with tls=no");
}
#else
#include "testutil.h"
#include "tlsutil.h"
#include <socketserver/tls.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HS_TIMEOUT 0.5
#define GOOD_SIZE (64u * 1024u)

static const tt_certs *C;
static bool tls11_ok;

enum bad_kind { SILENT, HALF_HELLO, PLAIN, HTTP, GARBAGE, TLS11, NBAD };

static const char *const r_timeout[] = { "timed out", "timeout", NULL };
static const char *const r_not_tls[] = { "not TLS", "not a TLS", "HTTP", "wrong version",
					 "unknown protocol", "record", "packet length",
					 "unexpected message", NULL };
static const char *const r_http[] = { "HTTP", NULL };
static const char *const r_version[] = { "unsupported protocol", "version", NULL };

struct bad {
	const char *name;
	const char *const *reasons;
	bool times_out;		/* fails by the handshake timeout */
	int fd;			/* raw clients */
	tt_conn tls;		/* the TLS 1.1 client */
	pthread_t thread;
	bool running;		/* thread not joined yet */
	int port;
	double connected;	/* tu_now() after connect */
};

static struct bad bads[NBAD] = {
	[SILENT] = { .name = "silent", .reasons = r_timeout, .times_out = true, .fd = -1 },
	[HALF_HELLO] = { .name = "half a ClientHello", .reasons = r_timeout, .times_out = true, .fd = -1 },
	[PLAIN] = { .name = "plain text", .reasons = r_not_tls, .times_out = false, .fd = -1 },
	[HTTP] = { .name = "HTTP", .reasons = r_http, .times_out = false, .fd = -1 },
	[GARBAGE] = { .name = "garbage", .reasons = r_not_tls, .times_out = false, .fd = -1 },
	[TLS11] = { .name = "TLS 1.1 only", .reasons = r_version, .times_out = false, .fd = -1 },
};

/* ------------------------------------------------------------------ */
/* Servers and clients                                                 */
/* ------------------------------------------------------------------ */

static ss_tls_config *config(void)
{
	ss_tls_options o;

	tt_server_options(&o);
	o.handshake_timeout = HS_TIMEOUT;
	return tt_config(&o);
}

/* A serving TLS echo server: on a thread of this process, or for the
 * forking model in a process of its own (see tt_serve_in_process). */
struct srv {
	ss_server *s;
	pthread_t t;
	pid_t pid;
};

static ss_server *tls_server(const ss_mixin *m, ss_tls_config *cfg, struct srv *v)
{
	ss_server *s = tt_tls_server(&ss_tcp_server_ops, m, &tu_echo_handler, cfg);

	v->s = s;
	v->pid = 0;
	if (m == &ss_forking_mixin)
		v->pid = tt_serve_in_process(s);
	else
		tu_serve_start(s, &v->t);
	return s;
}

static void stop_server(struct srv *v)
{
	if (v->pid > 0) {
		if (tt_stop_process(v->pid, TU_IO_TIMEOUT) != 0)
			fail("%s server process stopped cleanly", v->s->mixin->name);
	} else {
		tu_serve_stop(v->s, &v->t);
	}
	ss_server_free(v->s);
}

/* Garbage that is neither TLS, SSLv2 nor HTTP: a record header with an
 * unknown type and version, then noise. */
static void garbage(unsigned char *b, size_t n)
{
	unsigned x = 12345;
	size_t i;

	for (i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		b[i] = (unsigned char)(x >> 16);
	}
	b[0] = 0x42;
	b[1] = 0x99;
	b[2] = 0x07;
}

static void *tls11_main(void *arg)
{
	struct bad *b = arg;
	tt_opts o;

	tt_opts_init(&o);
	o.min_version = TLS1_VERSION;
	o.max_version = TLS1_1_VERSION;
	o.seclevel0 = true;
	o.timeout = 5.0;
	tt_handshake(&b->tls, &o);
	return NULL;
}

/* Connect the bad client k and make it misbehave (without waiting). */
static void bad_start(ss_server *s, enum bad_kind k)
{
	static const char half[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03 };
	static const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	struct bad *b = &bads[k];
	unsigned char junk[200];

	if (k == TLS11) {
		if (tt_open(&b->tls, &s->address) < 0)
			tap_bail("connect: %s", b->tls.err);
		b->port = tt_local_port(b->tls.fd);
		b->connected = tu_now();
		if (pthread_create(&b->thread, NULL, tls11_main, b) != 0)
			tap_bail("pthread_create failed");
		b->running = true;
		return;
	}
	b->fd = tu_connect(s);
	b->port = tt_local_port(b->fd);
	b->connected = tu_now();
	switch (k) {
	case HALF_HELLO:
		tu_send_all(b->fd, half, sizeof(half));
		break;
	case PLAIN:
		tu_send_all(b->fd, "hello\n", 6);
		break;
	case HTTP:
		tu_send_all(b->fd, http, sizeof(http) - 1);
		break;
	case GARBAGE:
		garbage(junk, sizeof(junk));
		tu_send_all(b->fd, junk, sizeof(junk));
		break;
	default:
		break;
	}
}

static void bad_end(enum bad_kind k)
{
	struct bad *b = &bads[k];

	if (k == TLS11) {
		if (b->running && !tu_join_within(b->thread, TU_IO_TIMEOUT, NULL))
			tap_bail("the TLS 1.1 client did not finish");
		b->running = false;
	} else if (b->fd >= 0) {
		close(b->fd);
		b->fd = -1;
	}
}

/* A verified TLS client: 64 KiB echo, close_notify both ways.  True when
 * all of it worked. */
static bool good_echo(ss_server *s, const char *tag)
{
	static unsigned char in[GOOD_SIZE], out[GOOD_SIZE];
	tt_opts co;
	tt_conn c;
	bool good;
	size_t i;

	for (i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(i * 7u + (i >> 8));
	tt_opts_init(&co);
	co.ca_file = C->ca;
	good = tt_connect(&c, s, &co) == 0 &&
	       tt_echo(&c, in, sizeof(in), out) == (ssize_t)sizeof(in) &&
	       !memcmp(in, out, sizeof(in)) &&
	       tt_shutdown(&c) == 0 && tt_expect_close(&c) == 0;
	if (!good)
		tap_diag("    %s: %s", tag, c.err);
	tt_close(&c);
	return good;
}

/* The checks on bad client k's handle_error entry. */
static void check_bad(enum bad_kind k, const char *model, bool forking)
{
	struct bad *b = &bads[k];
	const tt_errent *e;
	char want_peer[64];
	int n = tt_errlog_for_port(b->port, &e);
	double after;

	if (!is_int(n, 1, "%s: %s client: exactly one handle_error", model, b->name)) {
		tt_errlog_dump();
		if (!e) {
			tap_skip(forking ? 4 : 3, "no handle_error for it");
			return;
		}
	}
	snprintf(want_peer, sizeof(want_peer), "127.0.0.1:%d", b->port);
	is_str(e->peer, want_peer, "%s: %s client: handle_error has its address", model,
	       b->name);
	if (!ok(tt_has_any(e->msg, b->reasons), "%s: %s client: readable reason", model,
		b->name))
		tap_diag("    got '%s'", e->msg);
	else
		tap_diag("%s: %s: %s", model, b->name, e->msg);
	after = e->when - b->connected;
	if (b->times_out)
		ok(after >= HS_TIMEOUT - 0.1 && after < HS_TIMEOUT + 1.5,
		   "%s: %s client: dropped by the handshake timeout (after %.0f ms)", model,
		   b->name, after * 1000);
	else
		ok(after < HS_TIMEOUT - 0.1, "%s: %s client: dropped at once, not by the "
		   "timeout (after %.0f ms)", model, b->name, after * 1000);
	if (forking)
		ok(e->pid != getpid(), "%s: %s client: handle_error ran in the child", model,
		   b->name);
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */
/* ------------------------------------------------------------------ */

static void test_concurrent(const ss_mixin *m)
{
	bool forking = m == &ss_forking_mixin;
	int nbad = tls11_ok ? NBAD : NBAD - 1, k, n;
	ss_tls_config *cfg = config();
	struct srv v;
	ss_server *s;
	double done;
	bool good;

	tap_diag("--- %s: %d bad clients and a good one at once", m->name, nbad);
	tt_errlog_reset();
	s = tls_server(m, cfg, &v);
	for (k = 0; k < nbad; k++)
		bad_start(s, (enum bad_kind)k);
	good = good_echo(s, "good client");
	done = tu_now();
	ok(good, "%s: the good client's 64 KiB echo works while the bad ones are connected",
	   m->name);
	ok(done - bads[SILENT].connected < HS_TIMEOUT,
	   "%s: ... and completes before the silent client's %.1f s timeout (%.0f ms)",
	   m->name, HS_TIMEOUT, (done - bads[SILENT].connected) * 1000);
	if (!ok(tt_errlog_wait(nbad, HS_TIMEOUT + 3.0), "%s: %d handle_errors arrive",
		m->name, nbad))
		tt_errlog_dump();
	if (tls11_ok) {
		bad_end(TLS11);
		if (!ok(tt_has_any(bads[TLS11].tls.err, r_version),
			"%s: TLS 1.1 client: its handshake fails with a version alert", m->name))
			tap_diag("    got '%s'", bads[TLS11].tls.err);
		else
			tap_diag("%s: TLS 1.1 client saw: %s", m->name, bads[TLS11].tls.err);
	} else {
		tap_skip(1, "this OpenSSL cannot offer TLS 1.1");
	}
	for (k = 0; k < nbad; k++)
		check_bad((enum bad_kind)k, m->name, forking);
	ok(good_echo(s, "afterwards"), "%s: the server keeps serving afterwards", m->name);
	n = tt_errlog_count();
	if (!is_int(n, nbad, "%s: no other handle_error (good clients none)", m->name))
		tt_errlog_dump();
	for (k = 0; k < nbad; k++)
		bad_end((enum bad_kind)k);
	if (tls11_ok)
		tt_close(&bads[TLS11].tls);
	stop_server(&v);
	ss_tls_config_free(cfg);
	if (!tls11_ok)
		tap_skip(forking ? 5 : 4, "this OpenSSL cannot offer TLS 1.1 "
			 "(not even at security level 0)");
}

/*
 * Sync: the loop itself runs the handshake, so a silent client does hold
 * up the next one, but only for the handshake timeout.  Then a garbage
 * client just before a good one: the good one must not inherit its
 * OpenSSL errors (same thread).
 */
static void test_sync(void)
{
	ss_tls_config *cfg = config();
	const tt_errent *e;
	struct srv v;
	ss_server *s;
	double waited;
	bool good;

	tap_diag("--- sync: a silent client, then a good one");
	tt_errlog_reset();
	s = tls_server(&ss_sync_mixin, cfg, &v);
	bad_start(s, SILENT);
	good = good_echo(s, "good client behind the silent one");
	waited = tu_now() - bads[SILENT].connected;
	ok(good, "sync: the good client is served after the silent one");
	ok(waited < HS_TIMEOUT + 1.0,
	   "sync: the silent client blocks the loop at most about the handshake timeout "
	   "(%.0f ms)", waited * 1000);
	tt_errlog_wait(1, 2.0);
	check_bad(SILENT, "sync", false);
	bad_end(SILENT);

	tt_errlog_reset();
	bad_start(s, GARBAGE);
	good = good_echo(s, "good client after garbage");
	ok(good, "sync: a good client right after a garbage one is served");
	tt_errlog_wait(1, 2.0);
	is_int(tt_errlog_for_port(bads[GARBAGE].port, &e), 1,
	       "sync: the garbage client's one handle_error");
	if (!is_int(tt_errlog_count(), 1, "sync: none for the good client (no error "
		    "queue carried over)"))
		tt_errlog_dump();
	bad_end(GARBAGE);
	stop_server(&v);
	ss_tls_config_free(cfg);
}

int main(void)
{
	double t0;

	tu_init();
	t0 = tu_now();
	C = tt_get_certs();
	tls11_ok = tt_can_offer_tls11();
	if (!tls11_ok)
		tap_diag("this OpenSSL cannot offer TLS 1.1: that client is skipped");
	test_concurrent(&ss_threading_mixin);
	test_concurrent(&ss_forking_mixin);
	test_sync();
	tap_diag("took %.0f ms", (tu_now() - t0) * 1000);
	return tap_done();
}

#endif /* SS_HAVE_TLS */
