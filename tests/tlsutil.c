/*
 * tlsutil.c - the helpers of tlsutil.h: test certificates made with the
 * OpenSSL C API, a TLS client whose every step has a deadline, a
 * handle_error that logs into shared memory, and TLS servers using both.
 */
#include "tlsutil.h"
#include "tap.h"
#include "testutil.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* ------------------------------------------------------------------ */
/* Certificates                                                        */
/* ------------------------------------------------------------------ */

static tt_certs certs;
static bool certs_made;
static pid_t certs_owner;

#define DAY (24L * 60 * 60)
#define SERVER_SAN "IP:127.0.0.1,IP:::1,DNS:localhost"

static void certs_remove(void)
{
	char path[TT_PATH_MAX + 256];
	struct dirent *e;
	DIR *d;

	if (!certs.dir[0] || getpid() != certs_owner)
		return;
	d = opendir(certs.dir);
	if (d) {
		while ((e = readdir(d)) != NULL) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			snprintf(path, sizeof(path), "%s/%s", certs.dir, e->d_name);
			unlink(path);
		}
		closedir(d);
	}
	rmdir(certs.dir);
}

static void ssl_bail(const char *what)
{
	char buf[256];

	ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
	tap_bail("certificate generation: %s: %s", what, buf);
}

static EVP_PKEY *new_key(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	if (!k)
		ssl_bail("EVP_PKEY_Q_keygen");
	return k;
}

static void add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);

	if (!ext || !X509_add_ext(x, ext, -1))
		ssl_bail(value);
	X509_EXTENSION_free(ext);
}

enum cert_kind { CERT_CA, CERT_SERVER, CERT_CLIENT };

/* A certificate for key, CN=cn, signed by issuer/issuer_key (NULL for a
 * self-signed CA), valid from now+from to now+to seconds. */
static X509 *make_cert(enum cert_kind kind, const char *cn, const char *san,
		       EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
		       long serial, long from, long to)
{
	X509 *x = X509_new();
	X509_NAME *name;
	X509V3_CTX ctx;

	if (!x)
		ssl_bail("X509_new");
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_gmtime_adj(X509_getm_notBefore(x), from);
	X509_gmtime_adj(X509_getm_notAfter(x), to);
	X509_set_pubkey(x, key);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				   (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	if (kind == CERT_CA) {
		add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
	} else {
		add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE");
		add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature,keyEncipherment");
		add_ext(x, &ctx, NID_ext_key_usage,
			kind == CERT_SERVER ? "serverAuth" : "clientAuth");
	}
	add_ext(x, &ctx, NID_subject_key_identifier, "hash");
	if (issuer)
		add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always");
	if (san)
		add_ext(x, &ctx, NID_subject_alt_name, san);
	if (!X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()))
		ssl_bail("X509_sign");
	return x;
}

static void set_path(char *dst, const char *name)
{
	snprintf(dst, TT_PATH_MAX, "%s/%s", certs.dir, name);
}

static FILE *open_out(const char *path)
{
	FILE *f = fopen(path, "w");

	if (!f)
		tap_bail("cannot write %s: %s", path, strerror(errno));
	return f;
}

static void write_cert(const char *path, X509 *x)
{
	FILE *f = open_out(path);

	if (!PEM_write_X509(f, x))
		ssl_bail(path);
	fclose(f);
}

/* The key in PEM, encrypted with pass when pass is not NULL. */
static void write_key(const char *path, EVP_PKEY *k, const char *pass)
{
	FILE *f = open_out(path);
	int ok;

	if (pass)
		ok = PEM_write_PrivateKey(f, k, EVP_aes_256_cbc(),
					  (const unsigned char *)pass,
					  (int)strlen(pass), NULL, NULL);
	else
		ok = PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
	if (!ok)
		ssl_bail(path);
	fclose(f);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = open_out(path);

	fputs(text, f);
	fclose(f);
}

/* A leaf: new key, cert signed by the issuer, both written. */
static void make_leaf(enum cert_kind kind, const char *cn, const char *san,
		      X509 *ca, EVP_PKEY *ca_key, long serial, long from, long to,
		      const char *cert_path, const char *key_path, EVP_PKEY **keep)
{
	EVP_PKEY *k = new_key();
	X509 *x = make_cert(kind, cn, san, k, ca, ca_key, serial, from, to);

	write_cert(cert_path, x);
	write_key(key_path, k, NULL);
	X509_free(x);
	if (keep)
		*keep = k;
	else
		EVP_PKEY_free(k);
}

const tt_certs *tt_get_certs(void)
{
	EVP_PKEY *ca_key, *other_key, *server_key, *wrong;
	X509 *ca, *other;

	if (certs_made)
		return &certs;
	snprintf(certs.dir, sizeof(certs.dir), "/tmp/sstls-XXXXXX");
	if (!mkdtemp(certs.dir))
		tap_bail("mkdtemp: %s", strerror(errno));
	certs_owner = getpid();
	atexit(certs_remove);

	set_path(certs.ca, "ca.pem");
	set_path(certs.server, "server.pem");
	set_path(certs.server_key, "server.key");
	set_path(certs.server_key_enc, "server-enc.key");
	set_path(certs.server2, "server2.pem");
	set_path(certs.server2_key, "server2.key");
	set_path(certs.alt, "alt.pem");
	set_path(certs.alt_key, "alt.key");
	set_path(certs.wild, "wild.pem");
	set_path(certs.wild_key, "wild.key");
	set_path(certs.alice, "alice.pem");
	set_path(certs.alice_key, "alice.key");
	set_path(certs.other_ca, "other-ca.pem");
	set_path(certs.mallory, "mallory.pem");
	set_path(certs.mallory_key, "mallory.key");
	set_path(certs.expired, "expired.pem");
	set_path(certs.expired_key, "expired.key");
	set_path(certs.wrong_key, "wrong.key");
	set_path(certs.not_pem, "not-pem.pem");
	set_path(certs.empty, "empty.pem");

	ca_key = new_key();
	ca = make_cert(CERT_CA, "socketserver test CA", NULL, ca_key, NULL, NULL,
		       1, -DAY, 30 * DAY);
	write_cert(certs.ca, ca);
	other_key = new_key();
	other = make_cert(CERT_CA, "another test CA", NULL, other_key, NULL, NULL,
			  1, -DAY, 30 * DAY);
	write_cert(certs.other_ca, other);

	make_leaf(CERT_SERVER, TT_CN_SERVER, SERVER_SAN, ca, ca_key, 1001, -DAY,
		  30 * DAY, certs.server, certs.server_key, &server_key);
	write_key(certs.server_key_enc, server_key, TT_PASSPHRASE);
	EVP_PKEY_free(server_key);
	make_leaf(CERT_SERVER, TT_CN_SERVER2, SERVER_SAN, ca, ca_key, 1002, -DAY,
		  30 * DAY, certs.server2, certs.server2_key, NULL);
	make_leaf(CERT_SERVER, TT_CN_ALT, "DNS:alt.test", ca, ca_key, 1003, -DAY,
		  30 * DAY, certs.alt, certs.alt_key, NULL);
	make_leaf(CERT_SERVER, TT_CN_WILD, "DNS:*.wild.test", ca, ca_key, 1004,
		  -DAY, 30 * DAY, certs.wild, certs.wild_key, NULL);
	make_leaf(CERT_CLIENT, TT_CN_ALICE, NULL, ca, ca_key, 1005, -DAY, 30 * DAY,
		  certs.alice, certs.alice_key, NULL);
	make_leaf(CERT_CLIENT, TT_CN_MALLORY, NULL, other, other_key, 2001, -DAY,
		  30 * DAY, certs.mallory, certs.mallory_key, NULL);
	make_leaf(CERT_SERVER, TT_CN_SERVER, SERVER_SAN, ca, ca_key, 1006,
		  -30 * DAY, -DAY, certs.expired, certs.expired_key, NULL);
	wrong = new_key();
	write_key(certs.wrong_key, wrong, NULL);
	EVP_PKEY_free(wrong);
	write_text(certs.not_pem, "this is not a PEM file\njust some text\n");
	write_text(certs.empty, "");

	X509_free(ca);
	X509_free(other);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(other_key);
	certs_made = true;
	return &certs;
}

const char *tt_path(const char *name)
{
	static char ring[8][TT_PATH_MAX];
	static int next;
	char *p = ring[next++ % 8];

	snprintf(p, sizeof(ring[0]), "%s/%s", tt_get_certs()->dir, name);
	return p;
}

int tt_copy_file(const char *src, const char *dst)
{
	char tmp[TT_PATH_MAX + 80], buf[8192];
	int in, out, rc = 0;
	ssize_t n;

	snprintf(tmp, sizeof(tmp), "%s.tmp", dst);
	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0) {
		rc = -errno;
		close(in);
		return rc;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			rc = -EIO;
			break;
		}
	if (n < 0)
		rc = -errno;
	close(in);
	if (close(out) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, dst) < 0)
		rc = -errno;
	if (rc < 0)
		unlink(tmp);
	return rc;
}

int tt_make_fifo(const char *path)
{
	char tmp[TT_PATH_MAX + 80];
	int rc = 0;

	snprintf(tmp, sizeof(tmp), "%s.fifo", path);
	unlink(tmp);
	if (mkfifo(tmp, 0600) < 0)
		return -errno;
	if (rename(tmp, path) < 0) {
		rc = -errno;
		unlink(tmp);
	}
	return rc;
}

/* ------------------------------------------------------------------ */
/* The client                                                          */
/* ------------------------------------------------------------------ */

void tt_opts_init(tt_opts *o)
{
	memset(o, 0, sizeof(*o));
}

static void conn_reset(tt_conn *c)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->timeout = TU_IO_TIMEOUT;
}

/* err = "<step>: <what OpenSSL or errno says>". */
static int conn_fail(tt_conn *c, const char *step, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int conn_fail(tt_conn *c, const char *step, const char *fmt, ...)
{
	int n = snprintf(c->err, sizeof(c->err), "%s: ", step);
	va_list ap;

	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(c->err))
		vsnprintf(c->err + n, sizeof(c->err) - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* Every reason on this thread's OpenSSL error queue, "; "-separated,
 * plus the verification result when it failed. */
static int ssl_fail(tt_conn *c, const char *step, int sslerr)
{
	char why[400] = "";
	size_t len = 0;
	unsigned long e;

	while ((e = ERR_get_error()) != 0) {
		const char *r = ERR_reason_error_string(e);
		char num[32];

		if (!r) {
			snprintf(num, sizeof(num), "error %lx", e);
			r = num;
		}
		len += (size_t)snprintf(why + len, len < sizeof(why) ? sizeof(why) - len : 0,
					"%s%s", len ? "; " : "", r);
		if (len >= sizeof(why))
			len = sizeof(why) - 1;
	}
	if (c->ssl && SSL_get_verify_result(c->ssl) != X509_V_OK)
		len += (size_t)snprintf(why + len, sizeof(why) - len, " (%s)",
			X509_verify_cert_error_string(SSL_get_verify_result(c->ssl)));
	c->ssl_error = sslerr;
	if (!why[0]) {
		if (sslerr == SSL_ERROR_SYSCALL)
			snprintf(why, sizeof(why), "%s",
				 errno ? strerror(errno) : "unexpected EOF");
		else
			snprintf(why, sizeof(why), "SSL error %d", sslerr);
	}
	return conn_fail(c, step, "%s", why);
}

int tt_open(tt_conn *c, const ss_addr *a)
{
	int fd;

	conn_reset(c);
	fd = socket(a->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return conn_fail(c, "socket", "%s", strerror(errno));
	c->fd = fd;
	/* Loopback and unix connects complete at once (the backlog takes
	 * them); blocking here cannot hang. */
	while (connect(fd, (const struct sockaddr *)&a->ss, a->len) < 0)
		if (errno != EINTR)
			return conn_fail(c, "connect", "%s", strerror(errno));
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0)
		return conn_fail(c, "fcntl", "%s", strerror(errno));
	return 0;
}

/* "h2,http/1.1" in ALPN wire format into out; its length. */
static size_t alpn_wire(const char *list, unsigned char *out, size_t cap)
{
	size_t n = 0;

	while (*list) {
		size_t len = strcspn(list, ",");

		if (len > 255 || n + 1 + len > cap)
			break;
		out[n++] = (unsigned char)len;
		memcpy(out + n, list, len);
		n += len;
		list += len;
		if (*list == ',')
			list++;
	}
	return n;
}

static SSL_CTX *client_ctx(tt_conn *c, const tt_opts *o)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx)
		return NULL;
	if (o->seclevel0) {
		SSL_CTX_set_security_level(ctx, 0);
		SSL_CTX_set_cipher_list(ctx, "DEFAULT@SECLEVEL=0");
	}
	if (o->min_version && !SSL_CTX_set_min_proto_version(ctx, o->min_version))
		goto fail;
	if (o->max_version && !SSL_CTX_set_max_proto_version(ctx, o->max_version))
		goto fail;
	if (o->ca_file) {
		if (!SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL))
			goto fail;
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	} else {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	if (o->cert_file &&
	    (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1 ||
	     SSL_CTX_use_PrivateKey_file(ctx, o->key_file, SSL_FILETYPE_PEM) != 1))
		goto fail;
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
			 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* Wait for fd to become ready for what OpenSSL asked (sslerr), until the
 * deadline.  0, or -1 with err set. */
static int wait_io(tt_conn *c, const char *step, int sslerr, double deadline)
{
	struct pollfd p = { .fd = c->fd };
	int rc;

	p.events = sslerr == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN;
	for (;;) {
		double left = deadline - tu_now();

		if (left <= 0) {
			c->ssl_error = sslerr;
			return conn_fail(c, step, "timed out after %.1f s", c->timeout);
		}
		rc = poll(&p, 1, (int)(left * 1000) + 1);
		if (rc > 0)
			return 0;
		if (rc < 0 && errno != EINTR)
			return conn_fail(c, step, "poll: %s", strerror(errno));
	}
}

int tt_handshake(tt_conn *c, const tt_opts *o)
{
	unsigned char wire[256];
	double deadline;
	int rc;

	if (o->timeout > 0)
		c->timeout = o->timeout;
	ERR_clear_error();
	c->ctx = client_ctx(c, o);
	if (!c->ctx)
		return ssl_fail(c, "client setup", SSL_ERROR_SSL);
	c->ssl = SSL_new(c->ctx);
	if (!c->ssl || !SSL_set_fd(c->ssl, c->fd))
		return ssl_fail(c, "SSL_new", SSL_ERROR_SSL);
	if (o->sni && !SSL_set_tlsext_host_name(c->ssl, o->sni))
		return ssl_fail(c, "SNI", SSL_ERROR_SSL);
	if (o->alpn && SSL_set_alpn_protos(c->ssl, wire,
			(unsigned)alpn_wire(o->alpn, wire, sizeof(wire))) != 0)
		return ssl_fail(c, "ALPN", SSL_ERROR_SSL);
	if (o->session && !SSL_set_session(c->ssl, o->session))
		return ssl_fail(c, "SSL_set_session", SSL_ERROR_SSL);
	deadline = tu_now() + c->timeout;
	for (;;) {
		int e;

		ERR_clear_error();
		errno = 0;
		rc = SSL_connect(c->ssl);
		if (rc == 1)
			break;
		e = SSL_get_error(c->ssl, rc);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
			c->verify_result = SSL_get_verify_result(c->ssl);
			return ssl_fail(c, "handshake", e);
		}
		if (wait_io(c, "handshake", e, deadline) < 0)
			return -1;
	}
	c->verify_result = SSL_get_verify_result(c->ssl);
	return 0;
}

int tt_connect(tt_conn *c, const ss_server *s, const tt_opts *o)
{
	if (tt_open(c, &s->address) < 0)
		return -1;
	return tt_handshake(c, o);
}

ssize_t tt_write_all(tt_conn *c, const void *buf, size_t n)
{
	const char *p = buf;
	double deadline = tu_now() + c->timeout;
	size_t done = 0;

	if (!c->ssl)
		return conn_fail(c, "write", "not connected");
	while (done < n) {
		size_t chunk = n - done > 16384 ? 16384 : n - done;
		int rc, e;

		ERR_clear_error();
		errno = 0;
		rc = SSL_write(c->ssl, p + done, (int)chunk);
		if (rc > 0) {
			done += (size_t)rc;
			continue;
		}
		e = SSL_get_error(c->ssl, rc);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
			return ssl_fail(c, "write", e);
		if (wait_io(c, "write", e, deadline) < 0)
			return -1;
	}
	return (ssize_t)n;
}

ssize_t tt_read(tt_conn *c, void *buf, size_t n)
{
	double deadline = tu_now() + c->timeout;

	if (!c->ssl)
		return conn_fail(c, "read", "not connected");
	for (;;) {
		int rc, e;

		ERR_clear_error();
		errno = 0;
		rc = SSL_read(c->ssl, buf, n > 16384 ? 16384 : (int)n);
		if (rc > 0)
			return rc;
		e = SSL_get_error(c->ssl, rc);
		if (e == SSL_ERROR_ZERO_RETURN) {
			c->ssl_error = e;
			snprintf(c->err, sizeof(c->err), "read: close_notify received");
			return 0;
		}
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
			return ssl_fail(c, "read", e);
		if (wait_io(c, "read", e, deadline) < 0)
			return -1;
	}
}

ssize_t tt_read_line(tt_conn *c, char *buf, size_t cap)
{
	size_t n = 0;

	while (n + 1 < cap) {
		ssize_t r = tt_read(c, buf + n, 1);

		if (r < 0)
			return -1;
		if (r == 0)
			break;
		if (buf[n++] == '\n')
			break;
	}
	buf[n] = '\0';
	return (ssize_t)n;
}

ssize_t tt_echo(tt_conn *c, const void *msg, size_t n, void *out)
{
	const char *in = msg;
	char *o = out;
	size_t sent = 0, got = 0;
	double deadline = tu_now() + c->timeout;

	if (!c->ssl)
		return conn_fail(c, "echo", "not connected");
	while (got < n) {
		bool progress = false, want_write = false;
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		int rc, e;

		if (sent < n) {
			size_t chunk = n - sent > 16384 ? 16384 : n - sent;

			ERR_clear_error();
			errno = 0;
			rc = SSL_write(c->ssl, in + sent, (int)chunk);
			if (rc > 0) {
				sent += (size_t)rc;
				progress = true;
			} else {
				e = SSL_get_error(c->ssl, rc);
				if (e == SSL_ERROR_WANT_WRITE)
					want_write = true;
				else if (e != SSL_ERROR_WANT_READ)
					return ssl_fail(c, "echo write", e);
			}
		}
		ERR_clear_error();
		errno = 0;
		rc = SSL_read(c->ssl, o + got,
			      n - got > 16384 ? 16384 : (int)(n - got));
		if (rc > 0) {
			got += (size_t)rc;
			progress = true;
		} else {
			e = SSL_get_error(c->ssl, rc);
			if (e == SSL_ERROR_ZERO_RETURN) {
				c->ssl_error = e;
				snprintf(c->err, sizeof(c->err),
					 "echo: close_notify after %zu of %zu bytes", got, n);
				return (ssize_t)got;
			}
			if (e == SSL_ERROR_WANT_WRITE)
				want_write = true;
			else if (e != SSL_ERROR_WANT_READ)
				return ssl_fail(c, "echo read", e);
		}
		if (progress) {
			deadline = tu_now() + c->timeout;
			continue;
		}
		if (want_write)
			p.events |= POLLOUT;
		for (;;) {
			double left = deadline - tu_now();

			if (left <= 0)
				return conn_fail(c, "echo", "timed out with %zu sent, %zu of %zu back",
						 sent, got, n);
			rc = poll(&p, 1, (int)(left * 1000) + 1);
			if (rc > 0)
				break;
			if (rc < 0 && errno != EINTR)
				return conn_fail(c, "echo", "poll: %s", strerror(errno));
		}
	}
	return (ssize_t)got;
}

int tt_shutdown(tt_conn *c)
{
	int rc;

	if (!c->ssl)
		return conn_fail(c, "shutdown", "not connected");
	ERR_clear_error();
	rc = SSL_shutdown(c->ssl);	/* 0: sent, 1: both ways; never waits
					   long (the socket has room) */
	if (rc < 0)
		return ssl_fail(c, "shutdown", SSL_get_error(c->ssl, rc));
	return 0;
}

int tt_expect_close(tt_conn *c)
{
	char buf[4096];
	ssize_t n;

	while ((n = tt_read(c, buf, sizeof(buf))) > 0)
		;
	return n == 0 ? 0 : -1;
}

void tt_close(tt_conn *c)
{
	if (c->ssl)
		SSL_free(c->ssl);
	if (c->ctx)
		SSL_CTX_free(c->ctx);
	if (c->fd >= 0)
		close(c->fd);
	c->ssl = NULL;
	c->ctx = NULL;
	c->fd = -1;
	ERR_clear_error();
}

const char *tt_peer_cn(tt_conn *c, char *buf, size_t len)
{
	X509 *x = c->ssl ? SSL_get1_peer_certificate(c->ssl) : NULL;

	buf[0] = '\0';
	if (!x)
		return buf;
	if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName,
				      buf, (int)len) < 0)
		buf[0] = '\0';
	X509_free(x);
	return buf;
}

int tt_local_port(int fd)
{
	ss_addr a;

	memset(&a, 0, sizeof(a));
	a.len = sizeof(a.ss);
	if (getsockname(fd, (struct sockaddr *)&a.ss, &a.len) < 0)
		return -1;
	a.family = a.ss.ss_family;
	return ss_addr_port(&a);
}

bool tt_can_offer_tls11(void)
{
	unsigned char hello[16];
	tt_opts o;
	tt_conn c;
	int sv[2];
	bool yes = false;
	ssize_t n;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return false;
	conn_reset(&c);
	c.fd = sv[0];
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	tt_opts_init(&o);
	o.min_version = TLS1_VERSION;
	o.max_version = TLS1_1_VERSION;
	o.seclevel0 = true;
	o.timeout = 0.05;
	tt_handshake(&c, &o);	/* writes the ClientHello, then times out */
	/* record: 16 03 xx len(2) | handshake: 01 len(3) | client_version */
	n = recv(sv[1], hello, sizeof(hello), MSG_DONTWAIT);
	if (n >= 11 && hello[0] == 0x16 && hello[5] == 0x01)
		yes = hello[9] == 0x03 && hello[10] == 0x02;
	tt_close(&c);
	close(sv[1]);
	return yes;
}

const char *tt_openssl_binary(void)
{
	static char found[512];
	const char *path = getenv("PATH");

	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		size_t len = strcspn(path, ":");

		snprintf(found, sizeof(found), "%.*s/openssl", (int)len, path);
		if (len && access(found, X_OK) == 0)
			return found;
		path += len;
		if (*path == ':')
			path++;
	}
	return NULL;
}

bool tt_has_any(const char *hay, const char *const *words)
{
	for (; *words; words++)
		if (strcasestr(hay, *words))
			return true;
	return false;
}

/* ------------------------------------------------------------------ */
/* handle_error logged in shared memory                                */
/* ------------------------------------------------------------------ */

static tt_errlog *errlog;

tt_errlog *tt_errlog_get(void)
{
	if (!errlog) {
		void *p = mmap(NULL, sizeof(*errlog), PROT_READ | PROT_WRITE,
			       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

		if (p == MAP_FAILED)
			tap_bail("mmap: %s", strerror(errno));
		errlog = p;	/* zeroed by mmap */
	}
	return errlog;
}

void tt_errlog_reset(void)
{
	tt_errlog *l = tt_errlog_get();
	int i;

	for (i = 0; i < TT_ERRLOG_MAX; i++)
		atomic_store(&l->e[i].ready, 0);
	atomic_store(&l->reserved, 0);
	atomic_store(&l->server_errors, 0);
}

void tt_log_error(ss_server *s, ss_request *r, int err)
{
	tt_errlog *l = tt_errlog_get();
	tt_errent *e;
	int i;

	if (!r) {
		atomic_fetch_add(&l->server_errors, 1);
		return;
	}
	i = atomic_fetch_add(&l->reserved, 1);
	if (i >= TT_ERRLOG_MAX)
		return;
	e = &l->e[i];
	e->port = ss_addr_port(&r->client);
	e->err = err;
	e->pid = getpid();
	e->when = tu_now();
	ss_request_peer(r, e->peer, sizeof(e->peer));
	snprintf(e->msg, sizeof(e->msg), "%s", r->errmsg);
	atomic_store(&e->ready, 1);
}

int tt_errlog_count(void)
{
	tt_errlog *l = tt_errlog_get();
	int n = atomic_load(&l->reserved), i, ready = 0;

	if (n > TT_ERRLOG_MAX)
		n = TT_ERRLOG_MAX;
	for (i = 0; i < n; i++)
		ready += atomic_load(&l->e[i].ready);
	return ready;
}

static bool errlog_has(void *arg)
{
	return tt_errlog_count() >= *(int *)arg;
}

bool tt_errlog_wait(int n, double seconds)
{
	return tu_wait_until(errlog_has, &n, seconds);
}

int tt_errlog_for_port(int port, const tt_errent **out)
{
	tt_errlog *l = tt_errlog_get();
	int n = atomic_load(&l->reserved), i, count = 0;

	*out = NULL;
	if (n > TT_ERRLOG_MAX)
		n = TT_ERRLOG_MAX;
	for (i = 0; i < n; i++) {
		if (!atomic_load(&l->e[i].ready) || l->e[i].port != port)
			continue;
		if (!count++)
			*out = &l->e[i];
	}
	return count;
}

void tt_errlog_dump(void)
{
	tt_errlog *l = tt_errlog_get();
	int n = atomic_load(&l->reserved), i;

	if (n > TT_ERRLOG_MAX)
		n = TT_ERRLOG_MAX;
	for (i = 0; i < n; i++)
		if (atomic_load(&l->e[i].ready))
			tap_diag("    handle_error #%d: %s (err %d, pid %d): %s", i,
				 l->e[i].peer, l->e[i].err, (int)l->e[i].pid,
				 l->e[i].msg);
}

const ss_server_ops *tt_logging_ops(const ss_server_ops *base)
{
	static struct {
		const ss_server_ops *base;
		ss_server_ops copy;
	} tables[8];
	static size_t used;
	size_t i;

	for (i = 0; i < used; i++)
		if (tables[i].base == base)
			return &tables[i].copy;
	if (used == sizeof(tables) / sizeof(tables[0]))
		tap_bail("tt_logging_ops: too many tables");
	tables[used].base = base;
	tables[used].copy = *base;
	tables[used].copy.handle_error = tt_log_error;
	return &tables[used++].copy;
}

/* ------------------------------------------------------------------ */
/* TLS servers                                                         */
/* ------------------------------------------------------------------ */

void tt_server_options(ss_tls_options *o)
{
	const tt_certs *c = tt_get_certs();

	ss_tls_options_init(o);
	o->cert_file = c->server;
	o->key_file = c->server_key;
}

ss_tls_config *tt_config(const ss_tls_options *o)
{
	ss_error err = { 0 };
	ss_tls_config *c = ss_tls_config_new(o, &err);

	if (!c)
		tap_bail("ss_tls_config_new: %s", err.msg);
	return c;
}

ss_server *tt_tls_server(const ss_server_ops *ops, const ss_mixin *m,
			 const ss_handler *h, ss_tls_config *cfg)
{
	ss_server *s = tu_server(tt_logging_ops(ops), m, h, NULL);

	if (ss_server_use_tls(s, cfg) < 0)
		tap_bail("ss_server_use_tls: %s", s->errmsg);
	return s;
}

/* ------------------------------------------------------------------ */
/* A server in its own process                                         */
/* ------------------------------------------------------------------ */

static ss_server *process_server;

static void on_term(int sig)
{
	ss_server_shutdown(process_server);
}

pid_t tt_serve_in_process(ss_server *s)
{
	struct sigaction sa;
	pid_t pid = fork();
	int rc;

	if (pid < 0)
		tap_bail("fork: %s", strerror(errno));
	if (pid > 0)
		return pid;
	process_server = s;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	rc = ss_server_serve_forever(s, 0.5);
	ss_server_free(s);
	_exit(rc == 0 ? 0 : 1);
}

struct reap_arg {
	pid_t pid;
	int status;
	bool done;
};

static bool reaped(void *arg)
{
	struct reap_arg *a = arg;

	if (!a->done && waitpid(a->pid, &a->status, WNOHANG) == a->pid)
		a->done = true;
	return a->done;
}

int tt_stop_process(pid_t pid, double seconds)
{
	struct reap_arg a = { .pid = pid };

	kill(pid, SIGTERM);
	if (tu_wait_until(reaped, &a, seconds))
		return WIFEXITED(a.status) ? WEXITSTATUS(a.status) : -1;
	kill(pid, SIGKILL);	/* our own child, stuck */
	waitpid(pid, &a.status, 0);
	return -1;
}

long tt_rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}
