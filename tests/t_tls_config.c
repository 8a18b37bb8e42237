/*
 * t_tls_config.c - every bad TLS configuration fails at
 * ss_tls_config_new with NULL and a message naming the file and the
 * reason (missing, unreadable, not PEM, empty, key not matching, wrong or
 * missing passphrase - without prompting -, missing CA, bad ciphers, bad
 * version, missing SNI certificate); TLS on a datagram server is
 * refused; an expired certificate loads on the server but the client's
 * verification rejects it; 2,000 failed constructions leak no fd and
 * print nothing.  A FIFO (or a directory, or a file over 1 MiB) given as
 * any file fails at once as "not a regular file" instead of waiting for
 * a writer, at construction and at reload, which keeps the old
 * configuration; ca_path must be a directory; the CA file's subjects are
 * the CA names the server sends.
 *
 * In a build with tls=no (no OpenSSL) the same API exists and no
 * configuration can be made: ss_tls_config_new fails with -ENOTSUP and
 * says so, and the rest refuses or answers "not TLS".
 */
#include "tap.h"
#include "testutil.h"
#include <socketserver/tls.h>

#include <errno.h>

#if !SS_HAVE_TLS
int main(void)
{
	const char *why = "TLS support is not built in (built with tls=no)";
	ss_tls_options o;
	ss_error err = { 0 };
	ss_server *s;

	tu_init();
	ss_tls_options_init(&o);
	is_str(o.min_version, "1.2", "options_init: the documented defaults");
	o.cert_file = "server.pem";
	o.key_file = "server.key";
	ok(!ss_tls_config_new(&o, &err), "ss_tls_config_new fails");
	is_int(err.code, -ENOTSUP, "with -ENOTSUP");
	is_str(err.msg, why, "saying why");
	ok(!ss_tls_config_new(&o, NULL), "and with no ss_error");
	is_int(ss_tls_config_reload(NULL, &err), -ENOTSUP, "reload: -ENOTSUP");
	is_str(err.msg, why, "reload says why");
	ss_tls_config_free(NULL);
	s = tu_server(&ss_tcp_server_ops, NULL, &tu_echo_handler, NULL);
	is_int(ss_server_use_tls(s, NULL), -EINVAL, "ss_server_use_tls without a config: -EINVAL");
	ss_server_free(s);
	ok(!ss_tls_active(NULL) && !ss_tls_version(NULL) && !ss_tls_session_reused(NULL),
	   "no request is a TLS one");
	return tap_done();
}
#else
#include "testutil.h"
#include "tlsutil.h"

#include <openssl/pem.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const tt_certs *C;

static const char *const r_missing[] = { "No such file", "not found", "missing",
					 "does not exist", NULL };
static const char *const r_not_pem[] = { "PEM", "no start line", "decode", NULL };
static const char *const r_empty[] = { "empty", "no start line", "PEM",
				       "no certificate", "no key", NULL };
static const char *const r_match[] = { "match", NULL };
static const char *const r_pass[] = { "passphrase", "pass phrase", "password",
				      "decrypt", NULL };
static const char *const r_cipher[] = { "cipher", "suite", NULL };
static const char *const r_version[] = { "version", NULL };
static const char *const r_perm[] = { "Permission denied", "permission",
				      "unreadable", NULL };
static const char *const r_ca[] = { "CA", "ca_file", "ca_path", NULL };

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

/* ss_tls_config_new(o) must fail, naming name (NULL: no file involved)
 * and giving one of the reasons. */
static void expect_fail(const char *tag, const ss_tls_options *o, const char *name,
			const char *const *reasons)
{
	ss_error err = { 0 };
	ss_tls_config *c = ss_tls_config_new(o, &err);

	ok(c == NULL, "%s: ss_tls_config_new returns NULL", tag);
	ss_tls_config_free(c);
	if (name && !ok(strstr(err.msg, name) != NULL, "%s: message names %s", tag, name))
		tap_diag("    got '%s'", err.msg);
	if (!ok(tt_has_any(err.msg, reasons), "%s: message gives the reason (%s...)", tag,
		reasons[0]))
		tap_diag("    got '%s'", err.msg);
	if (!ok(err.code < 0, "%s: err.code is a negative errno (%d)", tag, err.code))
		tap_diag("    got %d", err.code);
	tap_diag("%s: %s", tag, err.msg);
}

static void test_good(void)
{
	ss_error err = { 0 };
	ss_tls_options o;
	ss_tls_config *c;

	tt_server_options(&o);
	c = ss_tls_config_new(&o, &err);
	if (!ok(c != NULL, "good configuration loads"))
		tap_diag("    %s", err.msg);
	ss_tls_config_free(c);
	ss_tls_config_free(NULL);
	pass("ss_tls_config_free(NULL) is fine");

	tt_server_options(&o);
	o.key_file = C->server_key_enc;
	o.key_password = TT_PASSPHRASE;
	c = ss_tls_config_new(&o, &err);
	if (!ok(c != NULL, "encrypted key with the right passphrase loads"))
		tap_diag("    %s", err.msg);
	ss_tls_config_free(c);
}

static void test_files(void)
{
	ss_tls_options o;

	tt_server_options(&o);
	o.cert_file = NULL;
	expect_fail("no cert_file", &o, NULL, (const char *const[]){ "cert", NULL });

	tt_server_options(&o);
	o.cert_file = tt_path("missing.pem");
	expect_fail("missing cert file", &o, "missing.pem", r_missing);
	tt_server_options(&o);
	o.key_file = tt_path("missing.key");
	expect_fail("missing key file", &o, "missing.key", r_missing);

	if (geteuid() == 0) {
		tap_skip(4, "unreadable file: running as root, chmod 000 does not stop reads");
	} else {
		char path[TT_PATH_MAX];

		snprintf(path, sizeof(path), "%s", tt_path("unreadable.pem"));
		tt_copy_file(C->server, path);
		chmod(path, 0);
		tt_server_options(&o);
		o.cert_file = path;
		expect_fail("unreadable cert file", &o, "unreadable.pem", r_perm);
	}

	tt_server_options(&o);
	o.cert_file = C->not_pem;
	expect_fail("cert not PEM", &o, base_name(C->not_pem), r_not_pem);
	tt_server_options(&o);
	o.key_file = C->not_pem;
	expect_fail("key not PEM", &o, base_name(C->not_pem), r_not_pem);
	tt_server_options(&o);
	o.cert_file = C->empty;
	expect_fail("empty cert file", &o, base_name(C->empty), r_empty);
	tt_server_options(&o);
	o.key_file = C->empty;
	expect_fail("empty key file", &o, base_name(C->empty), r_empty);

	tt_server_options(&o);
	o.key_file = C->wrong_key;
	expect_fail("key not matching the cert", &o, base_name(C->wrong_key), r_match);
	tt_server_options(&o);
	o.cert_file = C->alt;	/* a good cert, the server's key */
	expect_fail("cert not matching the key", &o, base_name(C->alt), r_match);

	tt_server_options(&o);
	o.key_file = C->server_key_enc;
	o.key_password = "not the passphrase";
	expect_fail("encrypted key, wrong passphrase", &o, base_name(C->server_key_enc),
		    r_pass);

	tt_server_options(&o);
	o.verify_client = SS_TLS_VERIFY_REQUIRE;
	o.ca_file = tt_path("missing-ca.pem");
	expect_fail("REQUIRE with a missing CA file", &o, "missing-ca.pem", r_missing);
	tt_server_options(&o);
	o.verify_client = SS_TLS_VERIFY_REQUIRE;
	o.ca_file = C->not_pem;
	expect_fail("REQUIRE with a CA file that is not PEM", &o, base_name(C->not_pem),
		    r_not_pem);
	tt_server_options(&o);
	o.verify_client = SS_TLS_VERIFY_REQUIRE;
	expect_fail("REQUIRE without any CA", &o, NULL, r_ca);

	tt_server_options(&o);
	o.sni[0] = (ss_tls_sni_cert){ "alt.test", tt_path("missing-sni.pem"), C->alt_key };
	o.sni_count = 1;
	expect_fail("SNI certificate missing", &o, "missing-sni.pem", r_missing);
	tt_server_options(&o);
	o.sni[0] = (ss_tls_sni_cert){ "alt.test", C->alt, C->wrong_key };
	o.sni_count = 1;
	expect_fail("SNI key not matching", &o, base_name(C->wrong_key), r_match);
}

static void test_params(void)
{
	ss_tls_options o;

	tt_server_options(&o);
	o.ciphers = "NOT-A-CIPHER";
	expect_fail("bad TLS 1.2 cipher list", &o, "NOT-A-CIPHER", r_cipher);
	tt_server_options(&o);
	o.ciphersuites = "TLS_NOT_A_SUITE";
	expect_fail("bad TLS 1.3 ciphersuites", &o, "TLS_NOT_A_SUITE", r_cipher);
	tt_server_options(&o);
	o.min_version = "1.7";
	expect_fail("bad min_version", &o, "1.7", r_version);
	tt_server_options(&o);
	o.min_version = "tls";
	expect_fail("min_version not a number", &o, "tls", r_version);
}

/*
 * An encrypted key without a passphrase must fail at once, never prompt:
 * run in a child with no controlling terminal (setsid), stdin from
 * /dev/null and stderr captured (OpenSSL's default prompt would open
 * /dev/tty, else read stdin and write "Enter PEM pass phrase:" to stderr).
 */
static void test_no_passphrase(void)
{
	int res[2], errp[2], status;
	char msg[SS_ERRMSG_MAX + 8] = "", errtext[1024] = "";
	size_t nm = 0, ne = 0;
	double t0 = tu_now(), took;
	bool done_res = false, done_err = false;
	pid_t pid;

	if (pipe2(res, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0)
		tap_bail("pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		tap_bail("fork: %s", strerror(errno));
	if (pid == 0) {
		ss_error err = { 0 };
		ss_tls_options o;
		ss_tls_config *c;
		int null = open("/dev/null", O_RDONLY);
		char line[SS_ERRMSG_MAX + 8];
		int n;

		setsid();
		dup2(null, 0);
		dup2(errp[1], 2);
		tt_server_options(&o);
		o.key_file = C->server_key_enc;
		c = ss_tls_config_new(&o, &err);
		n = snprintf(line, sizeof(line), "%c%s", c ? 'Y' : 'N', err.msg);
		if (write(res[1], line, (size_t)n) < 0)
			_exit(2);
		_exit(0);
	}
	close(res[1]);
	close(errp[1]);
	while (!done_res || !done_err) {
		struct pollfd p[2] = { { .fd = done_res ? -1 : res[0], .events = POLLIN },
				       { .fd = done_err ? -1 : errp[0], .events = POLLIN } };
		double left = t0 + 5.0 - tu_now();
		ssize_t r;

		if (left <= 0 || poll(p, 2, (int)(left * 1000) + 1) <= 0)
			break;
		if (p[0].revents) {
			r = read(res[0], msg + nm, sizeof(msg) - 1 - nm);
			if (r <= 0)
				done_res = true;
			else
				nm += (size_t)r;
		}
		if (p[1].revents) {
			r = read(errp[0], errtext + ne, sizeof(errtext) - 1 - ne);
			if (r <= 0)
				done_err = true;
			else
				ne += (size_t)r;
		}
	}
	took = tu_now() - t0;
	if (!done_res)
		kill(pid, SIGKILL);	/* our child, stuck */
	waitpid(pid, &status, 0);
	close(res[0]);
	close(errp[0]);
	msg[nm] = '\0';
	errtext[ne] = '\0';
	ok(done_res && took < 2.0, "encrypted key, no passphrase: fails fast (%.0f ms)",
	   took * 1000);
	ok(msg[0] == 'N', "encrypted key, no passphrase: ss_tls_config_new returns NULL");
	if (!ok(strstr(msg, base_name(C->server_key_enc)) != NULL,
		"encrypted key, no passphrase: message names the key file"))
		tap_diag("    got '%s'", msg + (msg[0] ? 1 : 0));
	if (!ok(tt_has_any(msg, r_pass), "encrypted key, no passphrase: message says so"))
		tap_diag("    got '%s'", msg + (msg[0] ? 1 : 0));
	if (!is_str(errtext, "", "encrypted key, no passphrase: nothing prompted on stderr"))
		tap_diag("    stderr: '%s'", errtext);
	tap_diag("no passphrase: %s", msg + (msg[0] ? 1 : 0));
}

static void test_dgram(void)
{
	ss_tls_options o;
	ss_tls_config *cfg;
	ss_server *s;
	int rc;

	tt_server_options(&o);
	cfg = tt_config(&o);
	s = tu_server(&ss_udp_server_ops, NULL, &tu_echo_handler, NULL);
	rc = ss_server_use_tls(s, cfg);
	is_int(rc, -EPROTONOSUPPORT, "ss_server_use_tls on UDP -> -EPROTONOSUPPORT");
	tap_diag("UDP: %s", s->errmsg);
	ss_server_free(s);
	s = tu_server(&ss_unix_dgram_server_ops, NULL, &tu_echo_handler, NULL);
	is_int(ss_server_use_tls(s, cfg), -EPROTONOSUPPORT,
	       "ss_server_use_tls on unix datagram -> -EPROTONOSUPPORT");
	ss_server_free(s);
	ss_tls_config_free(cfg);
}

/* OpenSSL loads an expired certificate on the server without complaint
 * (it is the peer's business to check dates); a verifying client rejects
 * it with "certificate has expired". */
static void test_expired(void)
{
	ss_error err = { 0 };
	ss_tls_options o;
	ss_tls_config *cfg;
	ss_server *s;
	pthread_t t;
	tt_opts co;
	tt_conn c;
	int rc;

	ss_tls_options_init(&o);
	o.cert_file = C->expired;
	o.key_file = C->expired_key;
	cfg = ss_tls_config_new(&o, &err);
	if (!ok(cfg != NULL, "expired certificate: loads on the server (OpenSSL does not "
			     "check dates of its own certificate)")) {
		tap_diag("    %s", err.msg);
		tap_skip(2, "no configuration");
		return;
	}
	s = tt_tls_server(&ss_tcp_server_ops, &ss_threading_mixin, &tu_echo_handler, cfg);
	tu_serve_start(s, &t);
	tt_opts_init(&co);
	co.ca_file = C->ca;
	rc = tt_connect(&c, s, &co);
	ok(rc < 0, "expired certificate: the verifying client's handshake fails");
	if (!ok(strstr(c.err, "certificate has expired") != NULL &&
		c.verify_result == X509_V_ERR_CERT_HAS_EXPIRED,
		"expired certificate: the client says \"certificate has expired\""))
		tap_diag("    got '%s' (verify result %ld)", c.err, c.verify_result);
	tap_diag("expired: client said: %s", c.err);
	tt_close(&c);
	tu_serve_stop(s, &t);
	ss_server_free(s);
	ss_tls_config_free(cfg);
}

/* ------------------------------------------------------------------ */
/* Files that are not regular files                                    */
/* ------------------------------------------------------------------ */

#define STEP_LIMIT 2.0	/* seconds a refusal may take (it is immediate) */

static const char *const r_not_regular[] = { "not a regular file", NULL };

/* ss_tls_config_new(o), or ss_tls_config_reload(reload), in a thread of
 * its own: a call blocked opening a FIFO must fail the test, not hang
 * it. */
struct step {
	const ss_tls_options *o;
	ss_tls_config *reload;
	ss_tls_config *c;		/* what ss_tls_config_new returned */
	int rc;				/* what the reload returned */
	ss_error err;
};

static void *step_main(void *arg)
{
	struct step *st = arg;

	if (st->reload)
		st->rc = ss_tls_config_reload(st->reload, &st->err);
	else
		st->c = ss_tls_config_new(st->o, &st->err);
	return NULL;
}

/*
 * Run the step; true when it returned within STEP_LIMIT seconds.  One
 * that did not is blocked opening (or reading) fifo, waiting for a
 * writer: the FIFO's write end is opened and closed until the step
 * returns (it then reads an empty file), so the test goes on.
 */
static bool run_step(struct step *st, const char *fifo)
{
	pthread_t t;
	bool in_time;
	int i, fd;

	memset(&st->err, 0, sizeof st->err);
	if (pthread_create(&t, NULL, step_main, st) != 0)
		tap_bail("pthread_create failed");
	in_time = tu_join_within(t, STEP_LIMIT, NULL);
	for (i = 0; !in_time; i++) {
		if (i == 100)
			tap_bail("a TLS configuration call stays blocked on %s", fifo);
		if ((fd = open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC)) >= 0)
			close(fd);
		if (tu_join_within(t, 0.1, NULL))
			break;
	}
	return in_time;
}

/* o names a FIFO (path), a directory or a file too big: the construction
 * fails at once, naming path and saying why. */
static void expect_refused(const char *tag, const ss_tls_options *o, const char *path,
			   const char *const *reasons)
{
	struct step st = { .o = o };
	double t0 = tu_now();
	bool in_time = run_step(&st, path);

	ok(in_time, "%s: ss_tls_config_new returns at once (%.0f ms)", tag,
	   (tu_now() - t0) * 1000);
	ok(st.c == NULL, "%s: ss_tls_config_new returns NULL", tag);
	ss_tls_config_free(st.c);
	if (!ok(strstr(st.err.msg, path) && tt_has_any(st.err.msg, reasons),
		"%s: the message names the file and says '%s'", tag, reasons[0]))
		tap_diag("    got '%s'", st.err.msg);
	ok(st.err.code < 0, "%s: err.code is a negative errno (%d)", tag, st.err.code);
	tap_diag("%s: %s", tag, st.err.msg);
}

static void test_fifos(void)
{
	static const char *const r_not_dir[] = { "not a directory", NULL };
	static const char *const r_too_big[] = { "larger than 1 MiB", NULL };
	char fifo[TT_PATH_MAX], big[TT_PATH_MAX];
	ss_tls_options o;
	FILE *f;

	snprintf(fifo, sizeof fifo, "%s", tt_path("fifo.pem"));
	if (tt_make_fifo(fifo) < 0)
		tap_bail("mkfifo %s: %s", fifo, strerror(errno));

	tt_server_options(&o);
	o.cert_file = fifo;
	expect_refused("FIFO as certificate", &o, fifo, r_not_regular);
	tt_server_options(&o);
	o.key_file = fifo;
	expect_refused("FIFO as key", &o, fifo, r_not_regular);
	tt_server_options(&o);
	o.verify_client = SS_TLS_VERIFY_REQUIRE;
	o.ca_file = fifo;
	expect_refused("FIFO as CA file", &o, fifo, r_not_regular);
	tt_server_options(&o);
	o.sni[0] = (ss_tls_sni_cert){ "alt.test", fifo, C->alt_key };
	o.sni_count = 1;
	expect_refused("FIFO as SNI certificate", &o, fifo, r_not_regular);
	tt_server_options(&o);
	o.verify_client = SS_TLS_VERIFY_REQUIRE;
	o.ca_path = fifo;
	expect_refused("FIFO as CA path", &o, fifo, r_not_dir);

	tt_server_options(&o);
	o.cert_file = C->dir;
	expect_refused("directory as certificate", &o, C->dir, r_not_regular);

	snprintf(big, sizeof big, "%s", tt_path("big.pem"));
	if (!(f = fopen(big, "w")) || fseek(f, 1024 * 1024, SEEK_SET) < 0 ||
	    fputc('\n', f) == EOF || fclose(f) != 0)
		tap_bail("cannot write %s", big);
	tt_server_options(&o);
	o.cert_file = big;
	expect_refused("certificate over 1 MiB", &o, big, r_too_big);
	unlink(big);
	unlink(fifo);
}

/* A verifying client of cfg, served by a threading TCP server, sees the
 * certificate with cn and gets its echo. */
static bool served_with(ss_tls_config *cfg, const char *cn)
{
	ss_server *s = tt_tls_server(&ss_tcp_server_ops, &ss_threading_mixin,
				     &tu_echo_handler, cfg);
	char got[128] = "", out[8];
	bool good = false;
	pthread_t t;
	tt_opts co;
	tt_conn c;

	tu_serve_start(s, &t);
	tt_opts_init(&co);
	co.ca_file = C->ca;
	if (tt_connect(&c, s, &co) == 0) {
		tt_peer_cn(&c, got, sizeof got);
		good = tt_echo(&c, "ping", 4, out) == 4 && strcmp(got, cn) == 0;
	}
	if (!good)
		tap_diag("    client: CN '%s', %s", got, c.err);
	tt_close(&c);
	tu_serve_stop(s, &t);
	ss_server_free(s);
	return good;
}

/* A reload that finds a FIFO in place of the certificate fails at once
 * and the configuration goes on serving the certificate it had. */
static void test_reload_fifo(void)
{
	char cert[TT_PATH_MAX];
	ss_tls_options o;
	struct step st;
	ss_tls_config *cfg;
	double t0;
	bool in_time;

	snprintf(cert, sizeof cert, "%s", tt_path("reload-fifo.pem"));
	if (tt_copy_file(C->server, cert) < 0)
		tap_bail("cannot copy %s", C->server);
	tt_server_options(&o);
	o.cert_file = cert;
	cfg = tt_config(&o);
	if (tt_make_fifo(cert) < 0)
		tap_bail("mkfifo %s: %s", cert, strerror(errno));
	memset(&st, 0, sizeof st);
	st.reload = cfg;
	t0 = tu_now();
	in_time = run_step(&st, cert);
	ok(in_time, "reload with a FIFO as certificate: returns at once (%.0f ms)",
	   (tu_now() - t0) * 1000);
	ok(st.rc < 0, "reload with a FIFO as certificate: fails (%d)", st.rc);
	if (!ok(strstr(st.err.msg, cert) && tt_has_any(st.err.msg, r_not_regular),
		"reload with a FIFO: the message names the file and says "
		"'not a regular file'"))
		tap_diag("    got '%s'", st.err.msg);
	tap_diag("reload with a FIFO: %s", st.err.msg);
	ok(served_with(cfg, TT_CN_SERVER),
	   "reload with a FIFO: the old certificate goes on serving");
	ss_tls_config_free(cfg);
	unlink(cert);
}

/* ca_path as a directory loads; the CA file's certificates are the CA
 * names the server asks the client for. */
static void test_ca_sources(void)
{
	char dir[TT_PATH_MAX];
	ss_error err = { 0 };
	ss_tls_options o;
	ss_tls_config *cfg;
	STACK_OF(X509_NAME) *names;
	X509 *ca;
	ss_server *s;
	pthread_t t;
	tt_opts co;
	tt_conn c;
	FILE *f;

	snprintf(dir, sizeof dir, "%s", C->dir);
	tt_server_options(&o);
	o.verify_client = SS_TLS_VERIFY_REQUIRE;
	o.ca_path = dir;
	cfg = ss_tls_config_new(&o, &err);
	if (!ok(cfg != NULL, "ca_path: a directory loads"))
		tap_diag("    %s", err.msg);
	ss_tls_config_free(cfg);

	tt_server_options(&o);
	o.verify_client = SS_TLS_VERIFY_REQUIRE;
	o.ca_file = C->ca;
	cfg = tt_config(&o);
	s = tt_tls_server(&ss_tcp_server_ops, &ss_threading_mixin, &tu_echo_handler, cfg);
	tu_serve_start(s, &t);
	tt_opts_init(&co);
	co.ca_file = C->ca;
	co.cert_file = C->alice;
	co.key_file = C->alice_key;
	ok(tt_connect(&c, s, &co) == 0, "ca_file: a client with a CA-signed certificate "
	   "completes the handshake");
	names = c.ssl ? SSL_get_client_CA_list(c.ssl) : NULL;
	if (!(f = fopen(C->ca, "r")) || !(ca = PEM_read_X509(f, NULL, NULL, NULL)))
		tap_bail("cannot read %s", C->ca);
	fclose(f);
	ok(names && sk_X509_NAME_num(names) == 1 &&
	   X509_NAME_cmp(sk_X509_NAME_value(names, 0), X509_get_subject_name(ca)) == 0,
	   "ca_file: the server names the CA file's CA in its certificate request");
	X509_free(ca);
	tt_close(&c);
	tu_serve_stop(s, &t);
	ss_server_free(s);
	ss_tls_config_free(cfg);
}

/* 2,000 failed constructions: no fd leaks, nothing printed, fast. */
static void test_many_failures(void)
{
	const int n = 2000;
	int fds0, fds, i, nulls = 0;
	double t0;
	char *text;
	ss_tls_options o;

	fds0 = tu_count_fds();
	t0 = tu_now();
	tu_stderr_begin();
	for (i = 0; i < n; i++) {
		ss_error err = { 0 };
		ss_tls_config *c;

		tt_server_options(&o);
		switch (i % 5) {
		case 0: o.cert_file = C->not_pem; break;
		case 1: o.key_file = C->wrong_key; break;
		case 2: o.cert_file = tt_path("missing.pem"); break;
		case 3: o.ciphers = "NOT-A-CIPHER"; break;
		case 4: o.verify_client = SS_TLS_VERIFY_REQUIRE;
			o.ca_file = C->empty; break;
		}
		c = ss_tls_config_new(&o, &err);
		nulls += c == NULL;
		ss_tls_config_free(c);
	}
	text = tu_stderr_end();
	fds = tu_count_fds();
	is_int(nulls, n, "2,000 bad configurations all failed");
	if (!is_int(fds, fds0, "2,000 failed constructions leak no fd"))
		tap_diag("    leaked %d fds", fds - fds0);
	if (!is_str(text, "", "2,000 failed constructions print nothing"))
		tap_diag("    stderr had %zu bytes", strlen(text));
	free(text);
	/* How long they took is information, not a pass mark (timed
	 * assertions flake under sanitizers on a loaded machine). */
	tap_diag("2,000 failures took %.0f ms", (tu_now() - t0) * 1000);
}

int main(void)
{
	double t0;

	tu_init();
	t0 = tu_now();
	C = tt_get_certs();
	test_good();
	test_files();
	test_params();
	test_no_passphrase();
	test_dgram();
	test_expired();
	test_fifos();
	test_reload_fifo();
	test_ca_sources();
	test_many_failures();
	tap_diag("took %.0f ms", (tu_now() - t0) * 1000);
	return tap_done();
}

#endif /* SS_HAVE_TLS */
