/*
 * tls.c - TLS (OpenSSL 3) as a layer under any stream server and model.
 *
 * A configuration (ss_tls_config) holds copies of the user's options and
 * the current "generation" of OpenSSL contexts built from the files: one
 * SSL_CTX for the default certificate and one per SNI name.  A reload
 * builds a whole new generation and swaps it in only if everything
 * loaded; connections hold a reference on the generation they started
 * with, so they are untouched.
 *
 * The layer's wrap runs in the request's own context (thread or child):
 * it creates an SSL over a BIO that calls the request's inner transport
 * (r->plain: EINTR, MSG_NOSIGNAL, timeouts and the shutdown grace are
 * handled there), runs the handshake within handshake_timeout, then
 * installs the TLS transport as r->transport, so the stream reader and
 * writer, and the handler above them, run unchanged.
 *
 * OpenSSL's error queue is per thread: it is cleared before every call
 * that may fail and after its reason is read, so one connection's errors
 * never show up in another's messages.
 */
#include "ss_internal.h"
#include <socketserver/tls.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <netinet/tcp.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define SID_CTX		"socketserver"	/* session id context */
#define FILE_MAX	(1u << 20)	/* largest file read (1 MiB): a
					   certificate chain is a few KiB */
#define MAX_STRINGS	(10 + 3 * SS_TLS_MAX_SNI)	/* string options */
#define NAME_TEXT	200	/* an option's text (file, cipher list) as a
				   message quotes it, escaped */

/* One set of OpenSSL contexts built from the files at one time: what a
 * reload replaces.  The config holds one reference, every connection
 * another for its whole life. */
struct tls_gen {
	atomic_int refs;
	const ss_tls_config *cfg;	/* for the SNI callback (handshake) */
	SSL_CTX *ctx;			/* the default certificate */
	SSL_CTX *sni_ctx[SS_TLS_MAX_SNI];	/* cfg->o.sni[i]'s */
};

struct ss_tls_config {
	ss_tls_options o;		/* the options; strings are copies */
	int min_version;		/* TLS1_2_VERSION or TLS1_3_VERSION */
	unsigned char *alpn;		/* o.alpn in wire format, or NULL */
	size_t alpn_len;
	pthread_mutex_t mu;		/* guards gen */
	struct tls_gen *gen;		/* the current generation */
};

/* One TLS connection: the transport a request uses after the handshake. */
struct tls_conn {
	ss_transport base;		/* r->transport points here */
	SSL *ssl;			/* owns the BIO */
	struct tls_gen *gen;		/* reference held */
	double deadline;		/* handshake: inner I/O ends here
					   (monotonic; 0: none) */
	int inner_err;			/* last negative errno of r->plain */
	bool inner_eof;			/* r->plain returned EOF */
	int fatal;			/* a failure that ends the session
					   (negative errno), 0 if none */
	char alpn[256];			/* the ALPN protocol, NUL-terminated */
};

static const ss_transport_ops tls_transport_ops;

/* The connection a TLS transport belongs to. */
static struct tls_conn *conn_of(ss_transport *t)
{
	return (struct tls_conn *)((char *)t - offsetof(struct tls_conn, base));
}

/* ------------------------------------------------------------------ */
/* Error messages                                                      */
/* ------------------------------------------------------------------ */

/* The reason text of an OpenSSL error code. */
static const char *reason_of(unsigned long e)
{
	const char *s = e ? ERR_reason_error_string(e) : NULL;

	return s ? s : "unknown error";
}

/* True if e says the file held no PEM block ("no start line" for a
 * certificate, "no certificate or crl found" for a CA file). */
static bool is_not_pem(unsigned long e)
{
	return (ERR_GET_LIB(e) == ERR_LIB_PEM &&
		ERR_GET_REASON(e) == PEM_R_NO_START_LINE) ||
	       (ERR_GET_LIB(e) == ERR_LIB_X509 &&
		ERR_GET_REASON(e) == X509_R_NO_CERTIFICATE_OR_CRL_FOUND);
}

/* Fill err (if not NULL) with a printf-style message and return code. */
static int __attribute__((format(printf, 3, 4)))
fail(ss_error *err, int code, const char *fmt, ...)
{
	char msg[SS_ERRMSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	ss__error_set(err, code, msg);
	return code;
}

/*
 * Fill err with "<what>: <OpenSSL's reason>", taking the root cause (the
 * first error queued, not the "PEM lib" wrappers after it), then clear
 * the queue.  Returns code.
 */
static int __attribute__((format(printf, 3, 4)))
ssl_fail(ss_error *err, int code, const char *fmt, ...)
{
	unsigned long e = ERR_peek_error();
	char what[SS_ERRMSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	ERR_clear_error();
	return fail(err, code, "%s: %s%s", what, reason_of(e),
		    is_not_pem(e) ? " (not a PEM file?)" : "");
}

/* What a file that is not a regular one is, for messages. */
static const char *file_kind(mode_t mode)
{
	if (S_ISDIR(mode))
		return "a directory";
	if (S_ISFIFO(mode))
		return "a FIFO";
	if (S_ISCHR(mode))
		return "a character device";
	if (S_ISBLK(mode))
		return "a block device";
	if (S_ISSOCK(mode))
		return "a socket";
	return "an unknown kind of file";
}

/* Make room in a file buffer that filled up (the file grew since
 * fstat): double it, up to FILE_MAX + 1 bytes (one more than a file may
 * have, to see that it is too big).  0, -EFBIG or -ENOMEM. */
static int grow(char **buf, size_t *cap)
{
	size_t want = *cap > FILE_MAX / 2 ? FILE_MAX + 1 : *cap * 2;
	char *p;

	if (*cap > FILE_MAX)
		return -EFBIG;
	if (!(p = realloc(*buf, want)))
		return -ENOMEM;
	*buf = p;
	*cap = want;
	return 0;
}

/* Read fd (a regular file of size bytes when it was checked) to its end
 * into a new buffer.  Returns the length with *out (the caller's to wipe
 * and free), or a negative errno (-EFBIG past FILE_MAX bytes). */
static ssize_t read_all(int fd, size_t size, char **out)
{
	size_t cap = size + 1, got = 0;
	char *buf = malloc(cap);
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		if (got == cap && (n = grow(&buf, &cap)) < 0)
			break;
		n = read(fd, buf + got, cap - got);
		if (n == 0) {
			*out = buf;
			return (ssize_t)got;
		}
		if (n > 0) {
			got += (size_t)n;
		} else if (errno != EINTR) {
			n = -errno;
			break;
		}
	}
	OPENSSL_cleanse(buf, got);
	free(buf);
	return n;
}

/*
 * Read a configuration file (what: "certificate", "key", "CA file") into
 * a memory BIO for OpenSSL to parse.  The file is opened without
 * blocking (opening a FIFO for reading waits for a writer, for ever if
 * none comes: ss_tls_config_new would hang, and a reload with it), must
 * be a regular file of at most FILE_MAX bytes, and is read from the very
 * descriptor that was checked, so nothing can be swapped in between.
 * The BIO wipes what it held when freed (keys).  Returns 0 with *out
 * (the caller's to BIO_free), or a negative errno with err filled: "TLS
 * certificate /tmp/f: not a regular file (a FIFO)".
 */
static int read_file(const char *what, const char *path, BIO **out, ss_error *err)
{
	char p[NAME_TEXT];
	struct stat st;
	char *data = NULL;
	ssize_t n;
	BIO *b;
	int fd, rc = 0;

	ss__escape_str(p, sizeof p, path);
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return fail(err, -errno, "TLS %s %s: %s", what, p, strerror(errno));
	if (fstat(fd, &st) < 0) {
		rc = fail(err, -errno, "TLS %s %s: %s", what, p, strerror(errno));
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = fail(err, S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL,
			  "TLS %s %s: not a regular file (%s)", what, p,
			  file_kind(st.st_mode));
		goto out_close;
	}
	n = st.st_size > FILE_MAX ? -EFBIG : read_all(fd, (size_t)st.st_size, &data);
	if (n == -EFBIG) {
		rc = fail(err, -EFBIG, "TLS %s %s: larger than %u MiB", what, p,
			  FILE_MAX >> 20);
		goto out_close;
	}
	if (n < 0) {
		rc = fail(err, (int)n, "TLS %s %s: %s", what, p, strerror((int)-n));
		goto out_close;
	}
	ERR_clear_error();
	b = BIO_new(BIO_s_secmem());
	if (!b || BIO_write(b, data, (int)n) != (int)n) {
		BIO_free(b);
		rc = ssl_fail(err, -ENOMEM, "TLS %s %s", what, p);
		goto out_free;
	}
	BIO_set_mem_eof_return(b, 0);	/* the end is the end, not "retry" */
	*out = b;

out_free:
	OPENSSL_cleanse(data, (size_t)n);
	free(data);
out_close:
	close(fd);
	return rc;
}

/* Check that path names a directory (ca_path: OpenSSL looks up the
 * hashed files in it by name when it verifies a client).  O_DIRECTORY
 * opens nothing else, so a FIFO or a device there is never opened.
 * Returns 0 or a negative errno with err filled. */
static int check_dir(const char *what, const char *path, ss_error *err)
{
	char p[NAME_TEXT];
	struct stat st;
	int fd, rc = 0;

	ss__escape_str(p, sizeof p, path);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 && errno == ENOTDIR)
		return fail(err, -ENOTDIR, "TLS %s %s: not a directory", what, p);
	if (fd < 0)
		return fail(err, -errno, "TLS %s %s: %s", what, p, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode))
		rc = fail(err, -ENOTDIR, "TLS %s %s: not a directory", what, p);
	close(fd);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Building an SSL_CTX                                                 */
/* ------------------------------------------------------------------ */

/* What the passphrase callback was given and whether it was asked. */
struct pw_ask {
	const char *password;
	bool asked;
};

/* OpenSSL asks for a key's passphrase: give key_password, never prompt
 * on the terminal.  Returns its length, 0 when there is none. */
static int password_cb(char *buf, int size, int rwflag, void *data)
{
	struct pw_ask *ask = data;
	size_t n;

	if (!ask)
		return 0;
	ask->asked = true;
	if (!ask->password || size <= 0)
		return 0;
	n = strlen(ask->password);
	if (n > (size_t)size)
		n = (size_t)size;
	memcpy(buf, ask->password, n);
	return (int)n;
}

/* Fill err for a private key OpenSSL refused, in the user's words.
 * Clears the error queue; returns -EINVAL. */
static int key_fail(ss_error *err, const struct pw_ask *ask, const char *key_file,
		    const char *cert_file)
{
	unsigned long e = ERR_peek_error();
	char key[NAME_TEXT], cert[NAME_TEXT];

	ss__escape_str(key, sizeof key, key_file);
	ss__escape_str(cert, sizeof cert, cert_file);

	if (ERR_GET_LIB(e) == ERR_LIB_X509 &&
	    ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH) {
		ERR_clear_error();
		return fail(err, -EINVAL, "TLS key %s does not match certificate %s",
			    key, cert);
	}
	if (ask->asked && !ask->password) {
		ERR_clear_error();
		return fail(err, -EINVAL,
			    "TLS key %s is encrypted and no passphrase was given",
			    key);
	}
	if (ask->asked) {	/* decrypting failed: "bad decrypt" mostly */
		ERR_clear_error();
		return fail(err, -EINVAL, "TLS key %s: %s (wrong passphrase?)",
			    key, reason_of(e));
	}
	if (ERR_GET_LIB(e) == ERR_LIB_OSSL_DECODER || is_not_pem(e)) {
		ERR_clear_error();
		return fail(err, -EINVAL,
			    "TLS key %s: no private key found (not a PEM key file?)",
			    key);
	}
	return ssl_fail(err, -EINVAL, "TLS key %s", key);
}

/*
 * Put the PEM certificate chain in b into ctx, as
 * SSL_CTX_use_certificate_chain_file does with a file: the first
 * certificate is the server's, the others its chain.  Returns true, or
 * false with the reason queued.
 */
static bool use_chain(SSL_CTX *ctx, BIO *b, struct pw_ask *ask)
{
	X509 *x = PEM_read_bio_X509_AUX(b, NULL, password_cb, ask);
	unsigned long e;
	bool ok;

	if (!x)
		return false;
	ok = SSL_CTX_use_certificate(ctx, x) == 1 && SSL_CTX_clear_chain_certs(ctx) == 1;
	X509_free(x);
	while (ok && (x = PEM_read_bio_X509(b, NULL, password_cb, ask)))
		if (!(ok = SSL_CTX_add0_chain_cert(ctx, x) == 1))
			X509_free(x);	/* add0 took it only on success */
	if (!ok)
		return false;
	e = ERR_peek_last_error();
	if (ERR_GET_LIB(e) != ERR_LIB_PEM || ERR_GET_REASON(e) != PEM_R_NO_START_LINE)
		return false;	/* a broken certificate, not the end */
	ERR_clear_error();
	return true;
}

/* Load a certificate chain and its key into ctx and check they match.
 * Returns 0 or a negative errno with err filled. */
static int load_cert_key(SSL_CTX *ctx, const ss_tls_config *c,
			 const char *cert, const char *key, ss_error *err)
{
	struct pw_ask ask = { .password = c->o.key_password };
	char k[NAME_TEXT], ce[NAME_TEXT];
	BIO *cb = NULL, *kb = NULL;
	EVP_PKEY *pkey;
	int rc;

	if ((rc = read_file("certificate", cert, &cb, err)) < 0 ||
	    (rc = read_file("key", key, &kb, err)) < 0)
		goto out_free;
	ERR_clear_error();
	if (!use_chain(ctx, cb, &ask)) {
		rc = ssl_fail(err, -EINVAL, "TLS certificate %s",
			      ss__escape_str(ce, sizeof ce, cert));
		goto out_free;
	}
	pkey = PEM_read_bio_PrivateKey(kb, NULL, password_cb, &ask);
	if (!pkey || SSL_CTX_use_PrivateKey(ctx, pkey) != 1) {
		rc = key_fail(err, &ask, key, cert);
	} else if (SSL_CTX_check_private_key(ctx) != 1) {
		ERR_clear_error();
		rc = fail(err, -EINVAL, "TLS key %s does not match certificate %s",
			  ss__escape_str(k, sizeof k, key),
			  ss__escape_str(ce, sizeof ce, cert));
	}
	EVP_PKEY_free(pkey);
out_free:
	BIO_free(cb);
	BIO_free(kb);
	return rc;
}

/* Is name in names already?  (A CA file is short: a linear search keeps
 * the file's order, which a sorted find would not.) */
static bool has_name(const STACK_OF(X509_NAME) *names, const X509_NAME *name)
{
	int i;

	for (i = 0; i < sk_X509_NAME_num(names); i++)
		if (X509_NAME_cmp(sk_X509_NAME_value(names, i), name) == 0)
			return true;
	return false;
}

/*
 * Trust the CA certificates and CRLs in the PEM data b (from the CA file
 * path), as SSL_CTX_load_verify_file does with a file, and name the
 * certificates' subjects in the CertificateRequest, as
 * SSL_load_client_CA_file does.  Returns 0 or a negative errno with err
 * filled.
 */
static int load_ca_file(SSL_CTX *ctx, BIO *b, const char *path, ss_error *err)
{
	char p[NAME_TEXT];
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	STACK_OF(X509_INFO) *infos;
	STACK_OF(X509_NAME) *names;
	X509_NAME *name;
	X509_INFO *in;
	int i, found = 0, rc = 0;

	ss__escape_str(p, sizeof p, path);
	ERR_clear_error();
	if (!(infos = PEM_X509_INFO_read_bio(b, NULL, password_cb, NULL)))
		return ssl_fail(err, -EINVAL, "TLS CA file %s", p);
	if (!(names = sk_X509_NAME_new_null())) {
		rc = ssl_fail(err, -ENOMEM, "TLS CA file %s", p);
		goto out_infos;
	}
	for (i = 0; i < sk_X509_INFO_num(infos); i++) {
		in = sk_X509_INFO_value(infos, i);
		if ((in->x509 && X509_STORE_add_cert(store, in->x509) != 1) ||
		    (in->crl && X509_STORE_add_crl(store, in->crl) != 1)) {
			rc = ssl_fail(err, -EINVAL, "TLS CA file %s", p);
			goto out_names;
		}
		found += (in->x509 != NULL) + (in->crl != NULL);
		name = in->x509 ? X509_get_subject_name(in->x509) : NULL;
		if (!name || has_name(names, name))
			continue;
		if (!(name = X509_NAME_dup(name)) || !sk_X509_NAME_push(names, name)) {
			X509_NAME_free(name);
			rc = ssl_fail(err, -ENOMEM, "TLS CA file %s", p);
			goto out_names;
		}
	}
	if (!found) {
		rc = fail(err, -EINVAL, "TLS CA file %s: no certificate or CRL found "
			  "(not a PEM file?)", p);
		goto out_names;
	}
	SSL_CTX_set_client_CA_list(ctx, names);	/* it owns them now */
	names = NULL;
out_names:
	sk_X509_NAME_pop_free(names, X509_NAME_free);
out_infos:
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	return rc;
}

/* Ask for client certificates as verify_client says, trusting ca_file /
 * ca_path.  Returns 0 or a negative errno with err filled. */
static int load_verify(SSL_CTX *ctx, const ss_tls_config *c, ss_error *err)
{
	const ss_tls_options *o = &c->o;
	char ca[NAME_TEXT];
	int rc = 0, mode = SSL_VERIFY_PEER;
	BIO *b = NULL;

	if (o->verify_client == SS_TLS_VERIFY_NONE) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		return 0;
	}
	if ((o->ca_file && (rc = read_file("CA file", o->ca_file, &b, err)) < 0) ||
	    (o->ca_path && (rc = check_dir("CA path", o->ca_path, err)) < 0) ||
	    (o->ca_file && (rc = load_ca_file(ctx, b, o->ca_file, err)) < 0))
		goto out_free;
	ERR_clear_error();
	if (o->ca_path && SSL_CTX_load_verify_dir(ctx, o->ca_path) != 1) {
		rc = ssl_fail(err, -EINVAL, "TLS CA path %s",
			      ss__escape_str(ca, sizeof ca, o->ca_path));
		goto out_free;
	}
	if (o->verify_client == SS_TLS_VERIFY_REQUIRE)
		mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
	SSL_CTX_set_verify(ctx, mode, NULL);
out_free:
	BIO_free(b);
	return rc;
}

/*
 * ALPN: the server's first preference that the client also offers.  If
 * nothing matches the connection goes on without ALPN (NOACK), as most
 * servers do, rather than failing.
 */
static int alpn_select(SSL *ssl, const unsigned char **out,
		       unsigned char *outlen, const unsigned char *in,
		       unsigned int inlen, void *arg)
{
	const ss_tls_config *c = arg;
	const unsigned char *p, *q, *end = in + inlen;

	for (p = c->alpn; p < c->alpn + c->alpn_len; p += 1 + p[0])
		for (q = in; q < end && q + 1 + q[0] <= end; q += 1 + q[0])
			if (q[0] == p[0] && memcmp(q + 1, p + 1, p[0]) == 0) {
				*out = q + 1;
				*outlen = q[0];
				return SSL_TLSEXT_ERR_OK;
			}
	return SSL_TLSEXT_ERR_NOACK;
}

/* Does the SNI pattern ("host.test", or "*.test" for one more label)
 * match name?  Case-insensitive. */
static bool sni_matches(const char *pattern, const char *name, bool wildcard)
{
	const char *dot;

	if (strncmp(pattern, "*.", 2) != 0)
		return !wildcard && strcasecmp(pattern, name) == 0;
	dot = strchr(name, '.');
	return wildcard && dot && dot != name && strcasecmp(dot + 1, pattern + 2) == 0;
}

/*
 * SNI: switch the connection to the certificate of the matching server
 * name (exact names first, then wildcards).  An unknown or absent name
 * keeps the default certificate; the name is still acknowledged, so
 * ss_tls_server_name() reports what the client asked for.
 */
static int servername_cb(SSL *ssl, int *alert, void *arg)
{
	const struct tls_gen *g = arg;
	const ss_tls_options *o = &g->cfg->o;
	const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	size_t i;
	int pass;

	if (!name)
		return SSL_TLSEXT_ERR_OK;
	for (pass = 0; pass < 2; pass++)
		for (i = 0; i < o->sni_count; i++)
			if (sni_matches(o->sni[i].server_name, name, pass == 1)) {
				SSL_set_SSL_CTX(ssl, g->sni_ctx[i]);
				return SSL_TLSEXT_ERR_OK;
			}
	return SSL_TLSEXT_ERR_OK;
}

/* Protocol versions, ciphers, sessions and modes: every context of a
 * configuration gets the same.  Returns 0 or -EINVAL with err filled. */
static int set_protocol(SSL_CTX *ctx, const ss_tls_config *c, ss_error *err)
{
	const ss_tls_options *o = &c->o;
	char t[NAME_TEXT];

	SSL_CTX_set_min_proto_version(ctx, c->min_version);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
			 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)SID_CTX,
				       sizeof SID_CTX - 1);
	if (!o->session_tickets) {
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
		SSL_CTX_set_num_tickets(ctx, 0);
	}
	ERR_clear_error();
	if (o->ciphers && SSL_CTX_set_cipher_list(ctx, o->ciphers) != 1)
		return ssl_fail(err, -EINVAL, "TLS ciphers '%s'",
				ss__escape_str(t, sizeof t, o->ciphers));
	if (o->ciphersuites && SSL_CTX_set_ciphersuites(ctx, o->ciphersuites) != 1)
		return ssl_fail(err, -EINVAL, "TLS ciphersuites '%s'",
				ss__escape_str(t, sizeof t, o->ciphersuites));
	if (c->alpn)
		SSL_CTX_set_alpn_select_cb(ctx, alpn_select, (void *)c);
	return 0;
}

/* A new server context for one certificate and key.  Returns it, or NULL
 * with err filled. */
static SSL_CTX *ctx_new(const ss_tls_config *c, const char *cert,
			const char *key, ss_error *err)
{
	SSL_CTX *ctx;

	ERR_clear_error();
	if (!(ctx = SSL_CTX_new(TLS_server_method()))) {
		ssl_fail(err, -ENOMEM, "TLS: SSL_CTX_new");
		return NULL;
	}
	/* Before any file is read: never a prompt on the terminal. */
	SSL_CTX_set_default_passwd_cb(ctx, password_cb);
	SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
	if (set_protocol(ctx, c, err) < 0 ||
	    load_cert_key(ctx, c, cert, key, err) < 0 ||
	    load_verify(ctx, c, err) < 0) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* ------------------------------------------------------------------ */
/* Generations                                                         */
/* ------------------------------------------------------------------ */

static void gen_free(struct tls_gen *g)
{
	size_t i;

	SSL_CTX_free(g->ctx);
	for (i = 0; i < SS_TLS_MAX_SNI; i++)
		SSL_CTX_free(g->sni_ctx[i]);
	free(g);
}

/* Drop a reference; the last one frees the generation. */
static void gen_put(struct tls_gen *g)
{
	if (g && atomic_fetch_sub(&g->refs, 1) == 1)
		gen_free(g);
}

/* A new reference on the configuration's current generation. */
static struct tls_gen *gen_get(ss_tls_config *c)
{
	struct tls_gen *g;

	pthread_mutex_lock(&c->mu);
	g = c->gen;
	atomic_fetch_add(&g->refs, 1);
	pthread_mutex_unlock(&c->mu);
	return g;
}

/* Build a whole generation from the configuration's files (one
 * reference, the caller's).  Returns it, or NULL with err filled. */
static struct tls_gen *gen_new(const ss_tls_config *c, ss_error *err)
{
	struct tls_gen *g = calloc(1, sizeof *g);
	size_t i;

	if (!g) {
		fail(err, -ENOMEM, "TLS: out of memory");
		return NULL;
	}
	atomic_init(&g->refs, 1);
	g->cfg = c;
	if (!(g->ctx = ctx_new(c, c->o.cert_file, c->o.key_file, err)))
		goto out_free;
	for (i = 0; i < c->o.sni_count; i++)
		if (!(g->sni_ctx[i] = ctx_new(c, c->o.sni[i].cert_file,
					      c->o.sni[i].key_file, err)))
			goto out_free;
	SSL_CTX_set_tlsext_servername_callback(g->ctx, servername_cb);
	SSL_CTX_set_tlsext_servername_arg(g->ctx, g);
	return g;

out_free:
	gen_free(g);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Configuration                                                       */
/* ------------------------------------------------------------------ */

/* Pointers to every string option of o, into f (MAX_STRINGS).  Returns
 * how many. */
static size_t string_fields(ss_tls_options *o, const char **f[])
{
	size_t n = 0, i;

	f[n++] = &o->cert_file;
	f[n++] = &o->key_file;
	f[n++] = &o->key_password;
	f[n++] = &o->min_version;
	f[n++] = &o->ciphers;
	f[n++] = &o->ciphersuites;
	f[n++] = &o->ca_file;
	f[n++] = &o->ca_path;
	f[n++] = &o->alpn;
	for (i = 0; i < o->sni_count && i < SS_TLS_MAX_SNI; i++) {
		f[n++] = &o->sni[i].server_name;
		f[n++] = &o->sni[i].cert_file;
		f[n++] = &o->sni[i].key_file;
	}
	return n;
}

/* Free the copied strings of o (the passphrase wiped first). */
static void strings_free(ss_tls_options *o)
{
	const char **f[MAX_STRINGS];
	size_t i, n = string_fields(o, f);

	if (o->key_password)
		OPENSSL_cleanse((char *)o->key_password, strlen(o->key_password));
	for (i = 0; i < n; i++) {
		free((char *)*f[i]);
		*f[i] = NULL;
	}
}

/* Replace every string of o by a copy.  Returns 0 or -ENOMEM (then o
 * holds no copies and no user strings). */
static int strings_copy(ss_tls_options *o)
{
	const char **f[MAX_STRINGS];
	size_t i, j, n = string_fields(o, f);

	for (i = 0; i < n; i++)
		if (*f[i] && !(*f[i] = strdup(*f[i]))) {
			for (j = i; j < n; j++)
				*f[j] = NULL;	/* still the user's */
			strings_free(o);
			return -ENOMEM;
		}
	return 0;
}

/* "h2,http/1.1" into ALPN wire format (length-prefixed names) in c.
 * Returns 0 or a negative errno with err filled. */
static int alpn_parse(ss_tls_config *c, ss_error *err)
{
	const char *s = c->o.alpn, *p, *comma;
	char t[NAME_TEXT];
	unsigned char *w;
	size_t k;

	if (!s)
		return 0;
	if (!(w = c->alpn = malloc(strlen(s) + 1)))
		return fail(err, -ENOMEM, "TLS: out of memory");
	for (p = s;; p = comma + 1) {
		comma = strchr(p, ',');
		k = comma ? (size_t)(comma - p) : strlen(p);
		if (k == 0 || k > 255)
			return fail(err, -EINVAL, "TLS alpn '%s': %s protocol name",
				    ss__escape_str(t, sizeof t, s),
				    k ? "a too long" : "an empty");
		*w++ = (unsigned char)k;
		memcpy(w, p, k);
		w += k;
		if (!comma)
			break;
	}
	c->alpn_len = (size_t)(w - c->alpn);
	return 0;
}

/* Check the options that need no file.  Returns 0 or a negative errno
 * with err filled. */
static int options_check(ss_tls_config *c, ss_error *err)
{
	const ss_tls_options *o = &c->o;
	char t[NAME_TEXT];
	size_t i;

	if (!o->cert_file || !o->key_file)
		return fail(err, -EINVAL, "TLS: cert_file and key_file are required");
	if (!o->min_version || strcmp(o->min_version, "1.2") == 0)
		c->min_version = TLS1_2_VERSION;
	else if (strcmp(o->min_version, "1.3") == 0)
		c->min_version = TLS1_3_VERSION;
	else
		return fail(err, -EINVAL, "TLS min_version '%s': use 1.2 or 1.3",
			    ss__escape_str(t, sizeof t, o->min_version));
	if (o->verify_client != SS_TLS_VERIFY_NONE && !o->ca_file && !o->ca_path)
		return fail(err, -EINVAL,
			    "TLS client verification needs ca_file or ca_path");
	for (i = 0; i < o->sni_count; i++)
		if (!o->sni[i].server_name || !o->sni[i].server_name[0] ||
		    !o->sni[i].cert_file || !o->sni[i].key_file)
			return fail(err, -EINVAL,
				    "TLS sni[%zu]: server_name, cert_file and key_file are required",
				    i);
	return alpn_parse(c, err);
}

ss_tls_config *ss_tls_config_new(const ss_tls_options *o, ss_error *err)
{
	ss_tls_config *c;

	if (!o) {
		fail(err, -EINVAL, "TLS: no options");
		return NULL;
	}
	if (o->sni_count > SS_TLS_MAX_SNI) {
		fail(err, -EINVAL, "TLS: %zu SNI certificates (at most %d)",
		     o->sni_count, SS_TLS_MAX_SNI);
		return NULL;
	}
	if (!(c = calloc(1, sizeof *c))) {
		fail(err, -ENOMEM, "TLS: out of memory");
		return NULL;
	}
	c->o = *o;
	if (strings_copy(&c->o) < 0) {
		fail(err, -ENOMEM, "TLS: out of memory");
		goto out_free;
	}
	if (options_check(c, err) < 0)
		goto out_strings;
	if (pthread_mutex_init(&c->mu, NULL) != 0) {
		fail(err, -ENOMEM, "TLS: cannot create a mutex");
		goto out_strings;
	}
	if (!(c->gen = gen_new(c, err)))
		goto out_mutex;
	return c;

out_mutex:
	pthread_mutex_destroy(&c->mu);
out_strings:
	free(c->alpn);
	strings_free(&c->o);
out_free:
	free(c);
	return NULL;
}

int ss_tls_config_reload(ss_tls_config *c, ss_error *err)
{
	ss_error local;
	struct tls_gen *g, *old;

	if (!err)
		err = &local;
	if (!c)
		return fail(err, -EINVAL, "TLS reload: no configuration");
	if (!(g = gen_new(c, err)))
		return err->code;
	pthread_mutex_lock(&c->mu);
	old = c->gen;
	c->gen = g;
	pthread_mutex_unlock(&c->mu);
	gen_put(old);		/* connections on it keep theirs */
	return 0;
}

void ss_tls_config_free(ss_tls_config *c)
{
	if (!c)
		return;
	gen_put(c->gen);
	pthread_mutex_destroy(&c->mu);
	free(c->alpn);
	strings_free(&c->o);
	free(c);
}

/* ------------------------------------------------------------------ */
/* The BIO: OpenSSL's bytes go through the request's inner transport    */
/* ------------------------------------------------------------------ */

/*
 * One recv (rbuf) or send (wbuf) on the request's inner transport, within
 * the handshake deadline while there is one.  Keeps the inner failure's
 * errno and EOF so the TLS layer reports them exactly.  Returns what the
 * inner transport returned.
 */
static ssize_t inner_io(struct tls_conn *c, void *rbuf, const void *wbuf,
			size_t len)
{
	ss_transport *in = &ss__rq(c->base.request)->plain;
	ssize_t n;

	if (c->deadline > 0)
		in->timeout_ms = ss__remaining_ms(c->deadline);
	n = rbuf ? in->ops->recv(in, rbuf, len) : in->ops->send(in, wbuf, len);
	if (n < 0)
		c->inner_err = (int)n;
	else if (n == 0 && rbuf)
		c->inner_eof = true;
	return n;
}

static int bio_read_ex(BIO *b, char *buf, size_t len, size_t *got)
{
	ssize_t n;

	*got = 0;
	if (len == 0)
		return 0;
	if ((n = inner_io(BIO_get_data(b), buf, NULL, len)) <= 0)
		return 0;
	*got = (size_t)n;
	return 1;
}

static int bio_write_ex(BIO *b, const char *buf, size_t len, size_t *put)
{
	ssize_t n;

	*put = 0;
	if (len == 0)
		return 1;
	if ((n = inner_io(BIO_get_data(b), NULL, buf, len)) <= 0)
		return 0;
	*put = (size_t)n;
	return 1;
}

/* Flush: nothing is buffered here.  EOF: the inner transport saw it, so
 * OpenSSL can tell a truncation from an I/O error. */
static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	struct tls_conn *c = BIO_get_data(b);

	switch (cmd) {
	case BIO_CTRL_FLUSH:
		return 1;
	case BIO_CTRL_EOF:
		return c && c->inner_eof;
	default:
		return 0;
	}
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

/* Create the BIO method once per process (NULL on failure). */
static void bio_method_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
				     "socketserver transport");

	if (m && BIO_meth_set_read_ex(m, bio_read_ex) &&
	    BIO_meth_set_write_ex(m, bio_write_ex) && BIO_meth_set_ctrl(m, bio_ctrl)) {
		bio_method = m;
		return;
	}
	BIO_meth_free(m);
}

/* A BIO over the connection's inner transport, or NULL. */
static BIO *bio_new(struct tls_conn *c)
{
	BIO *b;

	pthread_once(&bio_once, bio_method_init);
	if (!bio_method || !(b = BIO_new(bio_method)))
		return NULL;
	BIO_set_data(b, c);
	BIO_set_init(b, 1);
	return b;
}

/* ------------------------------------------------------------------ */
/* The handshake                                                       */
/* ------------------------------------------------------------------ */

/* A protocol version as OpenSSL names it ("TLSv1.1"). */
static const char *version_name(int v)
{
	switch (v) {
	case SSL3_VERSION:	return "SSLv3";
	case TLS1_VERSION:	return "TLSv1";
	case TLS1_1_VERSION:	return "TLSv1.1";
	case TLS1_2_VERSION:	return "TLSv1.2";
	case TLS1_3_VERSION:	return "TLSv1.3";
	default:		return "an unknown version";
	}
}

/* Seconds as the stream layer writes them: "5.0", "0.250". */
static void seconds_text(char *buf, size_t len, int ms)
{
	snprintf(buf, len, "%.*f", ms % 100 ? 3 : 1, ms / 1000.0);
}

/* Why an SSL_ERROR_SSL handshake failed, in the user's words, into why. */
static void handshake_reason(struct tls_conn *c, unsigned long e,
			     char *why, size_t len)
{
	int reason = ERR_GET_REASON(e);
	long v;

	if (ERR_GET_LIB(e) != ERR_LIB_SSL) {
		snprintf(why, len, "%s", reason_of(e));
		return;
	}
	switch (reason) {
	case SSL_R_HTTP_REQUEST:
		snprintf(why, len, "client sent plain HTTP, not TLS");
		return;
	case SSL_R_HTTPS_PROXY_REQUEST:
		snprintf(why, len, "client sent an HTTP proxy request, not TLS");
		return;
	case SSL_R_WRONG_VERSION_NUMBER:
	case SSL_R_UNKNOWN_PROTOCOL:
	case SSL_R_PACKET_LENGTH_TOO_LONG:
	case SSL_R_RECORD_LENGTH_MISMATCH:
	case SSL_R_UNEXPECTED_RECORD:
	case SSL_R_UNEXPECTED_MESSAGE:
	case SSL_R_LENGTH_MISMATCH:
	case SSL_R_LENGTH_TOO_SHORT:
		snprintf(why, len, "not a TLS handshake (%s)", reason_of(e));
		return;
	case SSL_R_UNSUPPORTED_PROTOCOL:
	case SSL_R_VERSION_TOO_LOW:
		snprintf(why, len, "unsupported protocol (client offered %s at most)",
			 version_name(SSL_client_version(c->ssl)));
		return;
	case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
		snprintf(why, len, "client did not present a certificate");
		return;
	case SSL_R_CERTIFICATE_VERIFY_FAILED:
		v = SSL_get_verify_result(c->ssl);
		snprintf(why, len, "certificate verify failed: %s",
			 X509_verify_cert_error_string(v));
		return;
	case SSL_R_NO_SHARED_CIPHER:
		snprintf(why, len, "no cipher in common with the client");
		return;
	}
	if (reason > SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256)
		snprintf(why, len, "client sent alert '%s'",
			 SSL_alert_desc_string_long(reason - SSL_AD_REASON_OFFSET));
	else
		snprintf(why, len, "%s", reason_of(e));
}

/*
 * Record why SSL_accept failed (ssl_err: SSL_get_error's answer) as the
 * request's error, "TLS handshake: <reason>", and clear the queue.
 * timeout_ms is the limit that applied.  Returns the negative errno: the
 * inner transport's for I/O failures (-ETIMEDOUT...), -ECONNABORTED when
 * the peer closed, -EPROTO for protocol failures.
 */
static int handshake_error(struct tls_conn *c, int ssl_err, int timeout_ms)
{
	ss_request *r = c->base.request;
	unsigned long e = ERR_peek_error();
	char why[SS_ERRMSG_MAX / 2], secs[32];
	int code = -EPROTO;

	bool eof = (ERR_GET_LIB(e) == ERR_LIB_SSL &&
		    ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) ||
		   (c->inner_eof && c->inner_err == 0);

	if (eof) {		/* (the alert after it may have failed) */
		code = -ECONNABORTED;
		snprintf(why, sizeof why, "peer closed the connection during the handshake");
	} else if (ssl_err == SSL_ERROR_SSL && e) {
		handshake_reason(c, e, why, sizeof why);
	} else if (c->inner_err == -ETIMEDOUT && timeout_ms >= 0) {
		code = -ETIMEDOUT;
		seconds_text(secs, sizeof secs, timeout_ms);
		snprintf(why, sizeof why, "timed out after %s s", secs);
	} else if (c->inner_err < 0) {
		code = c->inner_err;
		snprintf(why, sizeof why, "%s", strerror(-code));
	} else {
		code = -ECONNABORTED;
		snprintf(why, sizeof why, "peer closed the connection during the handshake");
	}
	ERR_clear_error();
	c->fatal = code;
	return ss_request_error(r, code, "TLS handshake: %s", why);
}

/* Run the server side of the handshake within the configured timeout
 * (the handler's timeout applies again afterwards).  Returns 0 or a
 * negative errno (recorded). */
static int handshake(struct tls_conn *c, const ss_tls_config *cfg)
{
	ss_transport *in = &ss__rq(c->base.request)->plain;
	int saved = in->timeout_ms, limit = saved, rc;

	if (cfg->o.handshake_timeout > 0) {
		limit = ss__timeout_ms(cfg->o.handshake_timeout);
		c->deadline = ss__now() + limit / 1000.0;
	}
	ERR_clear_error();
	c->inner_err = 0;
	rc = SSL_accept(c->ssl);
	if (rc == 1)
		rc = 0;
	else
		rc = handshake_error(c, SSL_get_error(c->ssl, rc), limit);
	c->deadline = 0;
	in->timeout_ms = saved;
	return rc;
}

/* ------------------------------------------------------------------ */
/* The TLS transport                                                   */
/* ------------------------------------------------------------------ */

/*
 * A failed SSL_read_ex / SSL_write_ex (ssl_err from SSL_get_error) as a
 * negative errno; clears the queue.  The inner transport's errno passes
 * through (the stream layer names it: "recv: timed out after 5.0 s"); a
 * timeout leaves the session usable, other failures end it.  A peer that
 * closed without close_notify is a truncation, -ECONNABORTED.
 */
static int io_fail(struct tls_conn *c, int ssl_err, const char *what)
{
	ss_request *r = c->base.request;
	unsigned long e = ERR_peek_error();
	bool eof = ERR_GET_LIB(e) == ERR_LIB_SSL &&
		   ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
	int rc;

	/* OpenSSL's alert after an EOF may fail to go out (EPIPE): the EOF
	 * is what happened. */
	if (eof || (c->inner_eof && c->inner_err == 0))
		rc = ss_request_error(r, -ECONNABORTED,
				      "TLS: peer closed without close_notify (truncated)");
	else if (ssl_err == SSL_ERROR_SSL && e)
		rc = ss_request_error(r, -EPROTO, "TLS %s: %s", what, reason_of(e));
	else if (c->inner_err < 0)
		rc = c->inner_err;
	else
		rc = ss_request_error(r, -EIO, "TLS %s: %s", what,
				      e ? reason_of(e) : "failed");
	ERR_clear_error();
	if (rc != -ETIMEDOUT)
		c->fatal = rc;
	return rc;
}

static ssize_t tls_recv(ss_transport *t, void *buf, size_t len)
{
	struct tls_conn *c = conn_of(t);
	size_t got;
	int rc;

	if (c->fatal)
		return c->fatal;
	ERR_clear_error();
	c->inner_err = 0;
	if (SSL_read_ex(c->ssl, buf, len, &got) == 1)
		return (ssize_t)got;
	rc = SSL_get_error(c->ssl, 0);
	if (rc == SSL_ERROR_ZERO_RETURN) {	/* close_notify: clean EOF */
		ERR_clear_error();
		return 0;
	}
	return io_fail(c, rc, "recv");
}

static ssize_t tls_send(ss_transport *t, const void *buf, size_t len)
{
	struct tls_conn *c = conn_of(t);
	size_t put;

	if (c->fatal)
		return c->fatal;
	ERR_clear_error();
	c->inner_err = 0;
	if (SSL_write_ex(c->ssl, buf, len, &put) == 1)
		return (ssize_t)put;
	return io_fail(c, SSL_get_error(c->ssl, 0), "send");
}

/* Send close_notify (once, without waiting for the peer's), then
 * half-close the inner transport.  Returns 0 or a negative errno. */
static int tls_shutdown(ss_transport *t)
{
	struct tls_conn *c = conn_of(t);
	ss_transport *in = &ss__rq(t->request)->plain;
	int rc = 0, rc2;

	if (!c->fatal) {
		ERR_clear_error();
		c->inner_err = 0;
		if (SSL_shutdown(c->ssl) < 0)
			rc = c->inner_err < 0 ? c->inner_err : -EPROTO;
		ERR_clear_error();
		c->fatal = -EPIPE;	/* nothing more goes out */
	}
	rc2 = in->ops->shutdown(in);
	return rc < 0 ? rc : rc2;
}

/* Free the session (the BIO goes with it) and drop the generation. */
static void tls_destroy(ss_transport *t)
{
	struct tls_conn *c = conn_of(t);

	SSL_free(c->ssl);
	gen_put(c->gen);
	free(c);
}

static const ss_transport_ops tls_transport_ops = {
	.name = "tls",
	.recv = tls_recv,
	.send = tls_send,
	.shutdown = tls_shutdown,
	.destroy = tls_destroy,
};

/* ------------------------------------------------------------------ */
/* The layer                                                           */
/* ------------------------------------------------------------------ */

/*
 * TCP_NODELAY on a TLS connection over TCP.  A TLS 1.3 server writes its
 * session tickets right after the handshake; under Nagle a small first
 * reply written behind them waits for the client's delayed ACK (40 ms).
 * The stream writer and TLS records already coalesce the output, so
 * Nagle has nothing left to gain.  Failure is harmless (only slower).
 */
static void no_nagle(ss_request *r)
{
	int one = 1;

	if (r->client.family == AF_INET || r->client.family == AF_INET6)
		(void)setsockopt(r->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/*
 * In the request's own context: a TLS session over the request's inner
 * transport, the handshake, and on success the TLS transport as
 * r->transport.  On failure nothing is left (the request goes on with its
 * plain transport, to be shut down and freed).  Returns 0 or a negative
 * errno with the reason recorded.
 */
static int tls_wrap(ss_request *r, void *data)
{
	ss_tls_config *cfg = data;
	struct tls_conn *c;
	BIO *bio;
	int rc;

	if (!ss__rq(r)->plain.ops)
		ss__plain_transport_init(r);
	no_nagle(r);
	if (!(c = calloc(1, sizeof *c)))
		return ss_request_error(r, -ENOMEM, "TLS: out of memory");
	c->base.ops = &tls_transport_ops;
	c->base.request = r;
	c->base.fd = r->fd;
	c->base.timeout_ms = ss__rq(r)->plain.timeout_ms;
	c->gen = gen_get(cfg);
	ERR_clear_error();
	if (!(c->ssl = SSL_new(c->gen->ctx))) {
		ERR_clear_error();
		rc = ss_request_error(r, -ENOMEM, "TLS: cannot create a session");
		goto out_free_conn;
	}
	if (!(bio = bio_new(c))) {
		ERR_clear_error();
		rc = ss_request_error(r, -ENOMEM, "TLS: cannot create a BIO");
		goto out_free_ssl;
	}
	SSL_set_bio(c->ssl, bio, bio);		/* the SSL owns it now */
	if ((rc = handshake(c, cfg)) < 0)
		goto out_free_ssl;
	ss__rq(r)->transport = &c->base;
	return 0;

out_free_ssl:
	SSL_free(c->ssl);
out_free_conn:
	gen_put(c->gen);
	free(c);
	return rc;
}

static const ss_layer tls_layer = {
	.name = "tls",
	.wrap = tls_wrap,
};

int ss_server_use_tls(ss_server *s, ss_tls_config *c)
{
	if (!s || !c)
		return -EINVAL;
	return ss_server_set_layer(s, &tls_layer, c);
}

/* ------------------------------------------------------------------ */
/* What the handshake negotiated                                       */
/* ------------------------------------------------------------------ */

/* The TLS connection of a request, or NULL if it is not TLS. */
static struct tls_conn *tls_of(const ss_request *r)
{
	if (!r || !ss__rq(r)->transport || ss__rq(r)->transport->ops != &tls_transport_ops)
		return NULL;
	return conn_of(ss__rq(r)->transport);
}

bool ss_tls_active(const ss_request *r)
{
	return tls_of(r) != NULL;
}

const char *ss_tls_version(const ss_request *r)
{
	struct tls_conn *c = tls_of(r);

	return c ? SSL_get_version(c->ssl) : NULL;
}

const char *ss_tls_cipher(const ss_request *r)
{
	struct tls_conn *c = tls_of(r);

	return c ? SSL_get_cipher_name(c->ssl) : NULL;
}

const char *ss_tls_alpn(const ss_request *r)
{
	struct tls_conn *c = tls_of(r);
	const unsigned char *p;
	unsigned int len;

	if (!c)
		return NULL;
	SSL_get0_alpn_selected(c->ssl, &p, &len);
	if (!p || len == 0 || len >= sizeof c->alpn)
		return NULL;
	memcpy(c->alpn, p, len);
	c->alpn[len] = '\0';
	return c->alpn;
}

const char *ss_tls_server_name(const ss_request *r)
{
	struct tls_conn *c = tls_of(r);

	return c ? SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name) : NULL;
}

const char *ss_tls_peer_subject(const ss_request *r, char *buf, size_t len)
{
	struct tls_conn *c = tls_of(r);
	X509 *x;
	BIO *mem;
	int n;

	if (!c || !buf || len == 0 ||
	    !(x = SSL_get0_peer_certificate(c->ssl)) ||
	    SSL_get_verify_result(c->ssl) != X509_V_OK)
		return NULL;
	ERR_clear_error();
	if (!(mem = BIO_new(BIO_s_mem()))) {
		ERR_clear_error();
		return NULL;
	}
	n = -1;
	if (X509_NAME_print_ex(mem, X509_get_subject_name(x), 0, XN_FLAG_RFC2253) >= 0)
		n = BIO_read(mem, buf, len - 1 > INT_MAX ? INT_MAX : (int)(len - 1));
	BIO_free(mem);
	ERR_clear_error();
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return buf;
}

bool ss_tls_session_reused(const ss_request *r)
{
	struct tls_conn *c = tls_of(r);

	return c && SSL_session_reused(c->ssl);
}
