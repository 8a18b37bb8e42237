/*
 * t_tls.c - TLS under the models: the plain echo handler (tu_echo_handler,
 * unchanged) echoes 1 MiB over TLS under sync, threading and forking TCP
 * and over unix stream; a handler sees the negotiated version, cipher,
 * ALPN, SNI and client subject; the first small reply after the
 * handshake is as prompt as over plain TCP; mutual TLS (require /
 * request, good cert, none, another CA's); SNI picks the certificate;
 * ALPN; the server sends close_notify and reports a peer's missing one
 * as a truncation; sessions resume by default; certificates reload
 * while clients are connected (and a broken reload keeps the old ones);
 * the openssl s_client command talks to the server; and N handshakes
 * (SS_TLS_SOAK, default 200, at least 60) do not grow the RSS (checked
 * outside ASan, whose quarantine holds freed memory; LeakSanitizer
 * checks there).
 * The forking server runs in a process of its own: see
 * tt_serve_in_process.
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
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

#define MIB (1024u * 1024u)

static const tt_certs *C;
static atomic_int *info_calls;	/* info handler runs (shared) */

/* ------------------------------------------------------------------ */
/* Servers and the info handler                                        */
/* ------------------------------------------------------------------ */

/* A serving TLS server of kind ops (handle_error logged) with model m. */
static ss_server *tls_server(const ss_server_ops *ops, const ss_mixin *m,
			     const ss_handler *h, ss_tls_config *cfg, pthread_t *t)
{
	ss_server *s = tt_tls_server(ops, m, h, cfg);

	tu_serve_start(s, t);
	return s;
}

static void stop_server(ss_server *s, pthread_t *t)
{
	tu_serve_stop(s, t);
	ss_server_free(s);
}

/* A threading TCP TLS server with a config of its own. */
struct tls_srv {
	ss_server *s;
	ss_tls_config *cfg;
	pthread_t t;
};

/* Serve h with options o (NULL: tt_server_options), the handle_error
 * log emptied first. */
static void up(struct tls_srv *v, const ss_tls_options *o, const ss_handler *h)
{
	ss_tls_options def;

	if (!o) {
		tt_server_options(&def);
		o = &def;
	}
	tt_errlog_reset();
	v->cfg = tt_config(o);
	v->s = tls_server(&ss_tcp_server_ops, &ss_threading_mixin, h, v->cfg, &v->t);
}

/* The check that nothing reached handle_error since the last reset. */
static void no_handle_error(const char *tag)
{
	if (!is_int(tt_errlog_count(), 0, "%s: no handle_error", tag))
		tt_errlog_dump();
}

/* Stop and free v; with a tag, check no_handle_error too. */
static void down(struct tls_srv *v, const char *tag)
{
	stop_server(v->s, &v->t);
	ss_tls_config_free(v->cfg);
	if (tag)
		no_handle_error(tag);
}

static const char *or_dash(const char *s)
{
	return s && *s ? s : "-";
}

/* Writes one line of what TLS negotiated, then ends the request. */
static int info_handle(ss_request *r)
{
	char subj[256], line[1024];

	atomic_fetch_add(info_calls, 1);
	snprintf(line, sizeof(line),
		 "active=%d version=%s cipher=%s alpn=%s sni=%s subject=%s reused=%d\n",
		 ss_tls_active(r), or_dash(ss_tls_version(r)), or_dash(ss_tls_cipher(r)),
		 or_dash(ss_tls_alpn(r)), or_dash(ss_tls_server_name(r)),
		 or_dash(ss_tls_peer_subject(r, subj, sizeof(subj))),
		 ss_tls_session_reused(r));
	return ss_write_all(r, line, strlen(line)) < 0 ? -EIO : 0;
}

static const ss_handler info_handler = { .handle = info_handle };

/* The value of " key=" in an info line, into out ("" when absent). */
static const char *field(const char *line, const char *key, char *out, size_t cap)
{
	char pat[32];
	const char *p;
	size_t n;

	snprintf(pat, sizeof(pat), "%s=", key);
	out[0] = '\0';
	for (p = line; (p = strstr(p, pat)) != NULL; p++)
		if (p == line || p[-1] == ' ')
			break;
	if (!p)
		return out;
	p += strlen(pat);
	n = strcspn(p, " \n");
	if (n >= cap)
		n = cap - 1;
	memcpy(out, p, n);
	out[n] = '\0';
	return out;
}

/* Connect with o and read the info line into line.  0, or -1 with the
 * client's error in line. */
static int get_info(ss_server *s, const tt_opts *o, char *line, size_t cap,
		    tt_conn *c)
{
	if (tt_connect(c, s, o) < 0 || tt_read_line(c, line, cap) <= 0) {
		snprintf(line, cap, "%s", c->err);
		return -1;
	}
	return 0;
}

/* get_info as a check named desc, showing the client's error if it
 * fails. */
static bool info_ok(ss_server *s, const tt_opts *o, char *line, size_t cap,
		    tt_conn *c, const char *desc)
{
	if (ok(get_info(s, o, line, cap, c) == 0, "%s", desc))
		return true;
	tap_diag("    %s", line);
	return false;
}

/* ------------------------------------------------------------------ */
/* Echo of 1 MiB                                                       */
/* ------------------------------------------------------------------ */

static void fill(unsigned char *b, size_t n, unsigned seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		b[i] = (unsigned char)((i * 131u + seed + (i >> 11)) & 0xff);
}

static void test_echo(const ss_server_ops *ops, const ss_mixin *m)
{
	static unsigned char in[MIB], out[MIB];
	int fds0 = tu_count_fds();
	ss_tls_options o;
	ss_tls_config *cfg;
	char tag[64];
	ss_server *s;
	pthread_t t;
	tt_opts co;
	tt_conn c;
	ssize_t n;
	double t0 = tu_now();
	pid_t pid = 0;

	snprintf(tag, sizeof(tag), "%s/%s", ops->name, m->name);
	tt_errlog_reset();
	tt_server_options(&o);
	cfg = tt_config(&o);
	if (m == &ss_forking_mixin) {
		/* See tt_serve_in_process: no forks while this process's
		 * client runs OpenSSL on another thread. */
		s = tt_tls_server(ops, m, &tu_echo_handler, cfg);
		pid = tt_serve_in_process(s);
	} else {
		s = tls_server(ops, m, &tu_echo_handler, cfg, &t);
	}
	fill(in, sizeof(in), (unsigned)m->name[0]);
	memset(out, 0, sizeof(out));
	tt_opts_init(&co);
	co.ca_file = C->ca;
	if (tt_connect(&c, s, &co) < 0) {
		fail("%s: TLS handshake (verified against the CA)", tag);
		tap_diag("    %s", c.err);
		tap_skip(3, "no connection");
	} else {
		pass("%s: TLS handshake (verified against the CA)", tag);
		n = tt_echo(&c, in, sizeof(in), out);
		if (!ok(n == (ssize_t)sizeof(in) && !memcmp(in, out, sizeof(in)),
			"%s: 1 MiB echoed over TLS by tu_echo_handler", tag))
			tap_diag("    got %zd of %zu bytes: %s", n, sizeof(in),
				 n < 0 ? c.err : "(data differs or short)");
		ok(tt_shutdown(&c) == 0, "%s: client close_notify sent", tag);
		if (!ok(tt_expect_close(&c) == 0,
			"%s: server answered with close_notify", tag))
			tap_diag("    %s", c.err);
	}
	tt_close(&c);
	if (pid > 0) {
		is_int(tt_stop_process(pid, TU_IO_TIMEOUT), 0,
		       "%s: server process stopped cleanly", tag);
		ss_server_free(s);
	} else {
		stop_server(s, &t);
	}
	ss_tls_config_free(cfg);
	no_handle_error(tag);
	is_int(tu_count_fds(), fds0, "%s: fd count back to baseline", tag);
	tap_diag("%s: %.0f ms", tag, (tu_now() - t0) * 1000);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/*
 * The first small reply after the handshake: over plain TCP the echo
 * handler answers at once; over TLS it must too.  (A TLS 1.3 server
 * writes its session tickets after the handshake; a small reply written
 * behind them waits for the client's delayed ACK under Nagle, 40 ms.)
 * Median of 5 connections, held to 35 ms: below the 40 ms stall, with
 * room for a loaded machine under a sanitizer.
 */
static void test_first_reply_latency(void)
{
	double tls[5], plain[5];
	struct tls_srv srv;
	ss_server *ps;
	pthread_t pt;
	char out[8];
	int i;

	tap_diag("--- latency of the first reply");
	up(&srv, NULL, &tu_echo_handler);
	ps = tu_server(&ss_tcp_server_ops, &ss_threading_mixin, &tu_echo_handler, NULL);
	tu_serve_start(ps, &pt);
	for (i = 0; i < 5; i++) {
		tt_opts co;
		tt_conn c;
		double t0;

		tt_opts_init(&co);
		tt_connect(&c, srv.s, &co);
		t0 = tu_now();
		tt_echo(&c, "ping", 4, out);
		tls[i] = tu_now() - t0;
		tt_shutdown(&c);
		tt_expect_close(&c);
		tt_close(&c);
		t0 = tu_now();
		tu_roundtrip(ps, "ping", 4, out, sizeof(out));
		plain[i] = tu_now() - t0;
	}
	qsort(tls, 5, sizeof(double), cmp_double);
	qsort(plain, 5, sizeof(double), cmp_double);
	tap_diag("first reply: TLS median %.1f ms, plain TCP median %.1f ms",
		 tls[2] * 1000, plain[2] * 1000);
	ok(tls[2] < 0.035, "first 4-byte reply after the handshake within 35 ms "
	   "(median %.1f ms; not held by Nagle behind the session tickets)", tls[2] * 1000);
	stop_server(ps, &pt);
	down(&srv, NULL);
}

/* ------------------------------------------------------------------ */
/* What the handler sees                                               */
/* ------------------------------------------------------------------ */

static void test_info(void)
{
	char line[1024], v[256], cn[128];
	struct tls_srv srv;
	ss_tls_options o;
	tt_opts co;
	tt_conn c;

	tap_diag("--- negotiated parameters inside handle()");
	tt_server_options(&o);
	o.alpn = "h2,http/1.1";
	up(&srv, &o, &info_handler);

	tt_opts_init(&co);
	co.sni = "localhost";
	co.alpn = "http/1.1";
	co.ca_file = C->ca;
	info_ok(srv.s, &co, line, sizeof(line), &c, "info: handler's line read");
	tap_diag("handler saw: %s", line);
	is_str(field(line, "active", v, sizeof(v)), "1", "info: ss_tls_active");
	is_str(field(line, "version", v, sizeof(v)),
	       c.ssl ? SSL_get_version(c.ssl) : "?", "info: version as the client negotiated");
	is_str(field(line, "cipher", v, sizeof(v)),
	       c.ssl ? SSL_get_cipher_name(c.ssl) : "?", "info: cipher as the client negotiated");
	is_str(field(line, "alpn", v, sizeof(v)), "http/1.1",
	       "ALPN: server h2,http/1.1, client http/1.1 -> http/1.1 in handle()");
	{
		const unsigned char *p = NULL;
		unsigned len = 0;
		char sel[64] = "";

		if (c.ssl)
			SSL_get0_alpn_selected(c.ssl, &p, &len);
		snprintf(sel, sizeof(sel), "%.*s", (int)len, p ? (const char *)p : "");
		is_str(sel, "http/1.1", "ALPN: the client sees http/1.1 selected");
	}
	is_str(field(line, "sni", v, sizeof(v)), "localhost", "info: SNI name in handle()");
	is_str(field(line, "subject", v, sizeof(v)), "-",
	       "info: no client certificate -> subject NULL");
	is_str(tt_peer_cn(&c, cn, sizeof(cn)), TT_CN_SERVER, "info: default certificate served");
	/* close_notify: the handler returned; the server says goodbye. */
	{
		char b[16];
		ssize_t n = tt_read(&c, b, sizeof(b));

		is_int(n, 0, "close_notify: SSL_read returns 0 after the handler ends");
		if (!is_int(c.ssl_error, SSL_ERROR_ZERO_RETURN,
			    "close_notify: SSL_ERROR_ZERO_RETURN (clean close_notify)"))
			tap_diag("    %s", c.err);
	}
	tt_close(&c);

	tt_opts_init(&co);
	co.alpn = "h2,http/1.1";
	get_info(srv.s, &co, line, sizeof(line), &c);
	is_str(field(line, "alpn", v, sizeof(v)), "h2",
	       "ALPN: client h2,http/1.1 -> the server's first choice h2");
	is_str(field(line, "sni", v, sizeof(v)), "-", "info: no SNI sent -> NULL");
	tt_close(&c);

	tt_opts_init(&co);
	get_info(srv.s, &co, line, sizeof(line), &c);
	is_str(field(line, "alpn", v, sizeof(v)), "-", "ALPN: client offers none -> NULL");
	tt_close(&c);

	down(&srv, "info");
}

/* ------------------------------------------------------------------ */
/* Mutual TLS                                                          */
/* ------------------------------------------------------------------ */

/* A client that must be refused: its handshake or first read fails, the
 * handler never runs, and handle_error gets one readable reason. */
static void check_refused(ss_server *s, const char *tag, const char *cert,
			  const char *key, const char *const *reasons)
{
	int calls0 = atomic_load(info_calls), port, count;
	const tt_errent *e;
	char line[512];
	tt_opts co;
	tt_conn c;
	int rc;

	tt_errlog_reset();
	tt_opts_init(&co);
	co.cert_file = cert;
	co.key_file = key;
	co.ca_file = C->ca;
	rc = get_info(s, &co, line, sizeof(line), &c);
	port = c.fd >= 0 ? tt_local_port(c.fd) : -1;
	if (!ok(rc < 0, "%s: refused (client handshake / first read fails)", tag))
		tap_diag("    handler answered: %s", line);
	else
		tap_diag("%s: client saw: %s", tag, line);
	tt_close(&c);
	tt_errlog_wait(1, 3.0);
	count = tt_errlog_for_port(port, &e);
	is_int(count, 1, "%s: one handle_error for the client", tag);
	if (e && !ok(tt_has_any(e->msg, reasons), "%s: server's reason is readable", tag))
		tap_diag("    got '%s'", e->msg);
	else if (e)
		tap_diag("%s: server said: %s", tag, e->msg);
	else
		fail("%s: server's reason is readable", tag);
	is_int(atomic_load(info_calls), calls0, "%s: handler never ran", tag);
}

/* Serve the info handler, client certificates verified against the CA
 * in mode. */
static void mtls_up(struct tls_srv *v, enum ss_tls_verify mode)
{
	ss_tls_options o;

	tt_server_options(&o);
	o.verify_client = mode;
	o.ca_file = C->ca;
	up(v, &o, &info_handler);
}

static void test_mtls(void)
{
	static const char *const no_cert[] = { "certificate", "cert", NULL };
	static const char *const bad_ca[] = { "certificate", "verify", "unknown ca",
					      "issuer", NULL };
	char line[1024], v[256];
	struct tls_srv srv;
	tt_opts co;
	tt_conn c;

	tap_diag("--- mutual TLS: require");
	mtls_up(&srv, SS_TLS_VERIFY_REQUIRE);
	tt_opts_init(&co);
	co.cert_file = C->alice;
	co.key_file = C->alice_key;
	co.ca_file = C->ca;
	info_ok(srv.s, &co, line, sizeof(line), &c,
		"require: good client certificate accepted");
	is_str(field(line, "subject", v, sizeof(v)), "CN=alice",
	       "require: ss_tls_peer_subject is CN=alice");
	ok(tt_expect_close(&c) == 0, "require: clean close after the handler");
	tt_close(&c);
	if (!is_int(tt_errlog_count(), 0, "require: no handle_error for alice"))
		tt_errlog_dump();
	check_refused(srv.s, "require, no client cert", NULL, NULL, no_cert);
	check_refused(srv.s, "require, cert from another CA", C->mallory, C->mallory_key,
		      bad_ca);
	/* The error queue of a refused handshake must not spill over. */
	tt_errlog_reset();
	info_ok(srv.s, &co, line, sizeof(line), &c,
		"require: alice still accepted after the refusals");
	tt_close(&c);
	down(&srv, NULL);

	tap_diag("--- mutual TLS: request");
	mtls_up(&srv, SS_TLS_VERIFY_REQUEST);
	tt_opts_init(&co);
	info_ok(srv.s, &co, line, sizeof(line), &c,
		"request: client without a certificate accepted");
	is_str(field(line, "subject", v, sizeof(v)), "-", "request: subject NULL without a cert");
	tt_close(&c);
	co.cert_file = C->alice;
	co.key_file = C->alice_key;
	get_info(srv.s, &co, line, sizeof(line), &c);
	is_str(field(line, "subject", v, sizeof(v)), "CN=alice",
	       "request: subject CN=alice with alice's cert");
	tt_close(&c);
	no_handle_error("request");
	check_refused(srv.s, "request, cert from another CA", C->mallory, C->mallory_key,
		      bad_ca);
	down(&srv, NULL);
}

/* ------------------------------------------------------------------ */
/* SNI                                                                 */
/* ------------------------------------------------------------------ */

static void sni_case(ss_server *s, const char *name, const char *want_cn,
		     const char *want_sni)
{
	char line[1024], v[256], cn[128];
	tt_opts co;
	tt_conn c;

	tt_opts_init(&co);
	co.sni = name;
	co.ca_file = C->ca;
	if (get_info(s, &co, line, sizeof(line), &c) < 0)
		tap_diag("    SNI %s: %s", name ? name : "(none)", line);
	is_str(tt_peer_cn(&c, cn, sizeof(cn)), want_cn, "SNI %s: certificate served",
	       name ? name : "(none)");
	is_str(field(line, "sni", v, sizeof(v)), want_sni, "SNI %s: name seen in handle()",
	       name ? name : "(none)");
	tt_close(&c);
}

static void test_sni(void)
{
	struct tls_srv srv;
	ss_tls_options o;

	tap_diag("--- SNI");
	tt_server_options(&o);
	o.sni[0] = (ss_tls_sni_cert){ "alt.test", C->alt, C->alt_key };
	o.sni[1] = (ss_tls_sni_cert){ "*.wild.test", C->wild, C->wild_key };
	o.sni_count = 2;
	up(&srv, &o, &info_handler);
	sni_case(srv.s, "alt.test", TT_CN_ALT, "alt.test");
	sni_case(srv.s, NULL, TT_CN_SERVER, "-");
	sni_case(srv.s, "x.wild.test", TT_CN_WILD, "x.wild.test");
	sni_case(srv.s, "unknown.test", TT_CN_SERVER, "unknown.test");
	down(&srv, "SNI");
}

/* ------------------------------------------------------------------ */
/* Truncation                                                          */
/* ------------------------------------------------------------------ */

static void test_truncation(void)
{
	static const char *const words[] = { "truncat", "close_notify", "close notify",
					     NULL };
	const tt_errent *e;
	struct tls_srv srv;
	char out[16];
	tt_opts co;
	tt_conn c;
	int port;

	tap_diag("--- truncation: the client closes without close_notify");
	up(&srv, NULL, &tu_echo_handler);
	tt_opts_init(&co);
	if (tt_connect(&c, srv.s, &co) < 0)
		tap_diag("    %s", c.err);
	port = tt_local_port(c.fd);
	/* The echo comes back, so the handler is inside its read loop. */
	ok(tt_echo(&c, "partial\n", 8, out) == 8, "truncation: handler is reading");
	tt_close(&c);	/* TCP FIN, no close_notify */
	tt_errlog_wait(1, 3.0);
	is_int(tt_errlog_for_port(port, &e), 1, "truncation: one handle_error");
	if (e) {
		if (!ok(tt_has_any(e->msg, words),
			"truncation: reported as truncated / without close_notify"))
			tap_diag("    got '%s'", e->msg);
		else
			tap_diag("server said: %s", e->msg);
		ok(e->err < 0, "truncation: err is a negative errno (%d)", e->err);
	} else {
		fail("truncation: reported as truncated / without close_notify");
		fail("truncation: err is a negative errno");
	}
	down(&srv, NULL);
}

/* ------------------------------------------------------------------ */
/* Session resumption                                                  */
/* ------------------------------------------------------------------ */

static void test_resumption(void)
{
	SSL_SESSION *sess = NULL;
	char line[1024], v[64];
	struct tls_srv srv;
	tt_opts co;
	tt_conn c;

	tap_diag("--- session resumption (default on)");
	up(&srv, NULL, &info_handler);
	tt_opts_init(&co);
	co.ca_file = C->ca;
	/* TLS 1.3 tickets follow the handshake: read the line first. */
	get_info(srv.s, &co, line, sizeof(line), &c);
	is_str(field(line, "reused", v, sizeof(v)), "0", "resumption: first connection is full");
	tt_expect_close(&c);
	/* Answer the close_notify: an SSL freed without it marks its
	 * session not resumable. */
	tt_shutdown(&c);
	if (c.ssl)
		sess = SSL_get1_session(c.ssl);
	tt_close(&c);
	ok(sess && SSL_SESSION_is_resumable(sess), "resumption: the client got a resumable session");
	co.session = sess;
	if (get_info(srv.s, &co, line, sizeof(line), &c) < 0)
		tap_diag("    %s", line);
	is_int(c.ssl ? SSL_session_reused(c.ssl) : -1, 1,
	       "resumption: SSL_session_reused on the client");
	is_str(field(line, "reused", v, sizeof(v)), "1",
	       "resumption: ss_tls_session_reused in handle()");
	tt_close(&c);
	SSL_SESSION_free(sess);
	down(&srv, "resumption");
}

/* ------------------------------------------------------------------ */
/* Reload                                                              */
/* ------------------------------------------------------------------ */

/* A new verified connection: the CN it sees, and whether it echoes. */
static void reload_probe(ss_server *s, const char *tag, const char *want_cn)
{
	char cn[128], out[32];
	tt_opts co;
	tt_conn c;

	tt_opts_init(&co);
	co.ca_file = C->ca;
	if (tt_connect(&c, s, &co) < 0)
		tap_diag("    %s: %s", tag, c.err);
	is_str(tt_peer_cn(&c, cn, sizeof(cn)), want_cn, "%s: new connection's certificate", tag);
	ok(tt_echo(&c, "probe", 5, out) == 5 && !memcmp(out, "probe", 5),
	   "%s: new connection echoes", tag);
	tt_shutdown(&c);
	tt_close(&c);
}

static void test_reload(void)
{
	char path_cert[TT_PATH_MAX], path_key[TT_PATH_MAX], out[64];
	ss_error err = { 0 };
	struct tls_srv srv;
	ss_tls_options o;
	tt_opts co;
	tt_conn old;
	int rc;

	tap_diag("--- reload while connected");
	snprintf(path_cert, sizeof(path_cert), "%s", tt_path("reload.pem"));
	snprintf(path_key, sizeof(path_key), "%s", tt_path("reload.key"));
	if (tt_copy_file(C->server, path_cert) < 0 || tt_copy_file(C->server_key, path_key) < 0)
		tap_bail("cannot copy the reload files");
	ss_tls_options_init(&o);
	o.cert_file = path_cert;
	o.key_file = path_key;
	up(&srv, &o, &tu_echo_handler);

	tt_opts_init(&co);
	co.ca_file = C->ca;
	if (tt_connect(&old, srv.s, &co) < 0)
		tap_diag("    %s", old.err);
	ok(tt_echo(&old, "before", 6, out) == 6, "reload: old client echoes before");
	reload_probe(srv.s, "before reload", TT_CN_SERVER);

	tt_copy_file(C->server2, path_cert);
	tt_copy_file(C->server2_key, path_key);
	rc = ss_tls_config_reload(srv.cfg, &err);
	if (!is_int(rc, 0, "reload: new certificate loaded"))
		tap_diag("    %s", err.msg);
	ok(tt_echo(&old, "after reload", 12, out) == 12 && !memcmp(out, "after reload", 12),
	   "reload: the client connected before keeps working");
	reload_probe(srv.s, "after reload", TT_CN_SERVER2);

	tt_copy_file(C->not_pem, path_cert);
	memset(&err, 0, sizeof(err));
	rc = ss_tls_config_reload(srv.cfg, &err);
	ok(rc < 0, "reload of a broken certificate fails (%d)", rc);
	if (!ok(strstr(err.msg, "reload.pem") != NULL, "broken reload: message names the file"))
		tap_diag("    got '%s'", err.msg);
	tap_diag("broken reload said: %s", err.msg);
	reload_probe(srv.s, "after broken reload", TT_CN_SERVER2);

	tt_copy_file(C->server2, path_cert);
	tt_copy_file(C->wrong_key, path_key);
	memset(&err, 0, sizeof(err));
	rc = ss_tls_config_reload(srv.cfg, &err);
	ok(rc < 0, "reload with a mismatched key fails (%d)", rc);
	if (!ok(strstr(err.msg, "reload.key") != NULL && strcasestr(err.msg, "match"),
		"mismatched reload: message names the key and says it does not match"))
		tap_diag("    got '%s'", err.msg);
	reload_probe(srv.s, "after mismatched reload", TT_CN_SERVER2);

	ok(tt_echo(&old, "still", 5, out) == 5, "reload: the old client still echoes at the end");
	ok(tt_shutdown(&old) == 0 && tt_expect_close(&old) == 0,
	   "reload: the old client ends cleanly");
	tt_close(&old);
	down(&srv, "reload");
}

/* ------------------------------------------------------------------ */
/* A real peer: openssl s_client                                       */
/* ------------------------------------------------------------------ */

static void test_s_client(void)
{
	const char *openssl = tt_openssl_binary();
	const char *msg = "hello from s_client\n";
	char port[16], connect_to[64], got[4096];
	int in[2], out[2], status;
	size_t n = 0;
	double deadline;
	struct tls_srv srv;
	pid_t pid;

	tap_diag("--- openssl s_client");
	if (!openssl) {
		tap_skip(2, "the openssl command is not installed");
		return;
	}
	up(&srv, NULL, &tu_echo_handler);
	snprintf(port, sizeof(port), "%d", ss_addr_port(&srv.s->address));
	snprintf(connect_to, sizeof(connect_to), "127.0.0.1:%s", port);
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
		tap_bail("pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		tap_bail("fork: %s", strerror(errno));
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(in[0], 0);
		dup2(out[1], 1);
		if (null >= 0)
			dup2(null, 2);
		execl(openssl, "openssl", "s_client", "-connect", connect_to,
		      "-CAfile", C->ca, "-verify_return_error", "-quiet", (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	if (write(in[1], msg, strlen(msg)) != (ssize_t)strlen(msg))
		tap_diag("    write to s_client: %s", strerror(errno));
	deadline = tu_now() + TU_IO_TIMEOUT;
	got[0] = '\0';
	while (!strstr(got, msg) && n + 1 < sizeof(got)) {
		struct pollfd p = { .fd = out[0], .events = POLLIN };
		double left = deadline - tu_now();
		ssize_t r;

		if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) <= 0)
			break;
		r = read(out[0], got + n, sizeof(got) - 1 - n);
		if (r <= 0)
			break;
		n += (size_t)r;
		got[n] = '\0';
	}
	if (!ok(strstr(got, msg) != NULL, "s_client: the line came back through the echo server"))
		tap_diag("    s_client printed '%s'", got);
	kill(pid, SIGTERM);	/* -quiet ignores stdin EOF; our own child */
	close(in[1]);
	close(out[0]);
	is_int(waitpid(pid, &status, 0), pid, "s_client: reaped");
	down(&srv, NULL);
}

/* ------------------------------------------------------------------ */
/* Many handshakes: RSS                                                */
/* ------------------------------------------------------------------ */

static void test_soak(void)
{
	const char *env = getenv("SS_TLS_SOAK");
	long n = env ? strtol(env, NULL, 10) : 200, i, good = 0;
	long rss50 = -1, rss_end;
	struct tls_srv srv;
	double t0 = tu_now();
	char out[32];

	if (n < 60)
		n = 60;
	tap_diag("--- %ld handshakes (SS_TLS_SOAK)", n);
	up(&srv, NULL, &tu_echo_handler);
	for (i = 0; i < n; i++) {
		tt_opts co;
		tt_conn c;

		tt_opts_init(&co);
		if (tt_connect(&c, srv.s, &co) == 0 && tt_echo(&c, "soak", 4, out) == 4 &&
		    tt_shutdown(&c) == 0 && tt_expect_close(&c) == 0)
			good++;
		else if (i - good < 3)
			tap_diag("    handshake %ld: %s", i, c.err);
		tt_close(&c);
		if (i + 1 == 50) {
			tu_wait_active(srv.s, 0, 2.0);
			rss50 = tt_rss_kib();
		}
	}
	tu_wait_active(srv.s, 0, 2.0);
	rss_end = tt_rss_kib();
	is_int(good, n, "soak: every handshake + echo + close_notify succeeded");
	tap_diag("soak: RSS after 50: %ld KiB, after %ld: %ld KiB (growth %ld KiB), %.0f ms",
		 rss50, n, rss_end, rss_end - rss50, (tu_now() - t0) * 1000);
	if (UNDER_ASAN)
		tap_skip(1, "RSS bound: ASan's quarantine keeps freed memory "
			    "(LeakSanitizer checks leaks at exit instead)");
	else
		ok(rss50 > 0 && rss_end - rss50 < 8 * 1024,
		   "soak: RSS grew less than 8 MiB between handshake 50 and %ld", n);
	down(&srv, "soak");
}

int main(void)
{
	double t0;

	tu_init();
	t0 = tu_now();
	C = tt_get_certs();
	info_calls = tu_shared_counters(1);
	tap_diag("certificates in %s (%.0f ms)", C->dir, (tu_now() - t0) * 1000);

	test_echo(&ss_tcp_server_ops, &ss_sync_mixin);
	test_echo(&ss_tcp_server_ops, &ss_threading_mixin);
	test_echo(&ss_tcp_server_ops, &ss_forking_mixin);
	test_echo(&ss_unix_stream_server_ops, &ss_threading_mixin);
	test_first_reply_latency();
	test_info();
	test_mtls();
	test_sni();
	test_truncation();
	test_resumption();
	test_reload();
	test_s_client();
	test_soak();
	tap_diag("took %.0f ms", (tu_now() - t0) * 1000);
	return tap_done();
}

#endif /* SS_HAVE_TLS */
