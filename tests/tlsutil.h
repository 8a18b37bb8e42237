/*
 * tlsutil.h - TLS helpers for the t_tls* programs: certificates and keys
 * generated at test time with the OpenSSL C API into a temp dir removed
 * at exit; a TLS client with a deadline on every step (non-blocking
 * socket + poll) that reports failures as readable strings; a
 * handle_error override that logs every call into shared memory, so
 * threads and forked children can be checked from the test process; and
 * TLS servers built on the test certificates with that override.
 *
 * Like testutil, a helper that cannot go on (out of memory, keygen
 * failing) calls tap_bail(); the client functions return -1 with the
 * reason in tt_conn.err.
 */
#ifndef TLSUTIL_H
#define TLSUTIL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include <socketserver.h>
#include <socketserver/tls.h>

/* ------------------------------------------------------------------ */
/* Certificates                                                        */
/* ------------------------------------------------------------------ */

#define TT_PATH_MAX 128
/* The passphrase of tt_certs.server_key_enc. */
#define TT_PASSPHRASE "correct horse battery staple"
/* Common names, for checks on the client side. */
#define TT_CN_SERVER "ss-test-server"
#define TT_CN_SERVER2 "ss-test-server-2"
#define TT_CN_ALT "alt.test"
#define TT_CN_WILD "*.wild.test"
#define TT_CN_ALICE "alice"
#define TT_CN_MALLORY "mallory"

/* Every file is PEM unless said otherwise; keys are EC P-256. */
typedef struct tt_certs {
	char dir[64];			/* the mkdtemp directory */
	char ca[TT_PATH_MAX];		/* test CA certificate */
	char server[TT_PATH_MAX];	/* CN=ss-test-server, SAN IP:127.0.0.1,
					   IP:::1, DNS:localhost; by ca */
	char server_key[TT_PATH_MAX];
	char server_key_enc[TT_PATH_MAX]; /* server_key, AES-256-CBC with
					     TT_PASSPHRASE */
	char server2[TT_PATH_MAX];	/* CN=ss-test-server-2, same SANs */
	char server2_key[TT_PATH_MAX];
	char alt[TT_PATH_MAX];		/* CN=alt.test, SAN DNS:alt.test */
	char alt_key[TT_PATH_MAX];
	char wild[TT_PATH_MAX];		/* CN=*.wild.test, SAN DNS:*.wild.test */
	char wild_key[TT_PATH_MAX];
	char alice[TT_PATH_MAX];	/* client cert CN=alice, by ca */
	char alice_key[TT_PATH_MAX];
	char other_ca[TT_PATH_MAX];	/* another CA */
	char mallory[TT_PATH_MAX];	/* client cert CN=mallory, by other_ca */
	char mallory_key[TT_PATH_MAX];
	char expired[TT_PATH_MAX];	/* server cert whose notAfter passed */
	char expired_key[TT_PATH_MAX];
	char wrong_key[TT_PATH_MAX];	/* a key matching no certificate */
	char not_pem[TT_PATH_MAX];	/* text that is not PEM */
	char empty[TT_PATH_MAX];	/* a 0-byte file */
} tt_certs;

/* Generate everything once per process (later calls return the same
 * set); the directory is removed at exit by the process that made it. */
const tt_certs *tt_get_certs(void);

/* "<certs dir>/<name>": a path for files a test writes itself (static
 * ring of 8 buffers; copy to keep). */
const char *tt_path(const char *name);

/* Copy file src to dst through a temp file + rename (so a reload never
 * sees half a file).  0 or -errno. */
int tt_copy_file(const char *src, const char *dst);

/* Put a FIFO at path (made beside it, renamed over whatever is there):
 * a reader that opens it blocking waits for a writer.  0 or -errno. */
int tt_make_fifo(const char *path);

/* ------------------------------------------------------------------ */
/* The client                                                          */
/* ------------------------------------------------------------------ */

typedef struct tt_opts {
	const char *sni;		/* server name sent; NULL: none */
	const char *alpn;		/* "h2,http/1.1"; NULL: no ALPN */
	const char *cert_file;		/* client certificate; NULL: none */
	const char *key_file;
	const char *ca_file;		/* verify the server against it;
					   NULL: no verification */
	int min_version;		/* TLS1_VERSION...; 0: OpenSSL's */
	int max_version;		/* 0: OpenSSL's */
	bool seclevel0;			/* security level 0, "DEFAULT@SECLEVEL=0" */
	SSL_SESSION *session;		/* resume it; NULL: full handshake */
	double timeout;			/* every step, seconds; 0: TU_IO_TIMEOUT */
} tt_opts;

typedef struct tt_conn {
	int fd;				/* -1 when none */
	SSL_CTX *ctx;
	SSL *ssl;
	double timeout;
	int ssl_error;			/* SSL_get_error() of the last failure,
					   SSL_ERROR_ZERO_RETURN on a clean close */
	long verify_result;		/* SSL_get_verify_result after handshake */
	char err[512];			/* "handshake: certificate verify failed
					   (certificate has expired)" */
} tt_conn;

void tt_opts_init(tt_opts *o);

/* Connect a stream socket to a (TCP or unix); the fd is non-blocking.
 * 0, or -1 with c->err.  Always tt_close(c) afterwards. */
int tt_open(tt_conn *c, const ss_addr *a);
/* The TLS handshake on an open conn, bounded by o->timeout. */
int tt_handshake(tt_conn *c, const tt_opts *o);
/* tt_open(s->address) + tt_handshake. */
int tt_connect(tt_conn *c, const ss_server *s, const tt_opts *o);

/* Write all n bytes: n or -1. */
ssize_t tt_write_all(tt_conn *c, const void *buf, size_t n);
/* Read what is there (up to n): a count, 0 on a clean close_notify
 * (ssl_error == SSL_ERROR_ZERO_RETURN), -1 on error or timeout. */
ssize_t tt_read(tt_conn *c, void *buf, size_t n);
/* Read a line up to '\n' (kept) into buf, NUL-terminated: its length,
 * 0 at a clean close, -1 on error. */
ssize_t tt_read_line(tt_conn *c, char *buf, size_t cap);
/* Send msg and read n bytes of echo into out, writing and reading at
 * once (a big echo cannot deadlock): n, fewer at a clean close, or -1. */
ssize_t tt_echo(tt_conn *c, const void *msg, size_t n, void *out);
/* Send close_notify (one SSL_shutdown).  0 or -1. */
int tt_shutdown(tt_conn *c);
/* Read until the peer's close_notify: 0 when it came cleanly
 * (SSL_ERROR_ZERO_RETURN), -1 otherwise (err says what came instead).
 * Data arriving before it is discarded. */
int tt_expect_close(tt_conn *c);
/* Free the TLS state and close the socket, without close_notify. */
void tt_close(tt_conn *c);

/* The server certificate's CN as the client saw it, into buf ("" if
 * none). */
const char *tt_peer_cn(tt_conn *c, char *buf, size_t len);
/* The local port of the connection (-1 for unix). */
int tt_local_port(int fd);

/* True when this OpenSSL can be made to offer TLS 1.1 at most (security
 * level 0): the ClientHello it writes is looked at on a socketpair. */
bool tt_can_offer_tls11(void);

/* Where the openssl command is, or NULL. */
const char *tt_openssl_binary(void);

/* Case-insensitive: does hay contain any of the NULL-terminated words? */
bool tt_has_any(const char *hay, const char *const *words);

/* ------------------------------------------------------------------ */
/* handle_error logged in shared memory                                */
/* ------------------------------------------------------------------ */

#define TT_ERRLOG_MAX 64

typedef struct tt_errent {
	atomic_int ready;		/* 1 once the fields are written */
	int port;			/* client port (-1 for unix clients) */
	int err;			/* handle_error's err */
	pid_t pid;			/* process that called it */
	double when;			/* tu_now() */
	char peer[SS_ADDRSTRLEN];	/* ss_request_peer() */
	char msg[SS_ERRMSG_MAX];	/* request->errmsg */
} tt_errent;

typedef struct tt_errlog {
	atomic_int reserved;		/* entries claimed */
	atomic_int server_errors;	/* calls with request == NULL */
	tt_errent e[TT_ERRLOG_MAX];
} tt_errlog;

/* The log (MAP_SHARED, made on first use; never freed). */
tt_errlog *tt_errlog_get(void);
void tt_errlog_reset(void);
/* A handle_error slot: logs the call, prints nothing. */
void tt_log_error(ss_server *s, ss_request *r, int err);
/* Entries written so far (ready ones). */
int tt_errlog_count(void);
/* Wait until at least n entries are ready; true if they are. */
bool tt_errlog_wait(int n, double seconds);
/* The entries for a client port: how many, and the first in *out. */
int tt_errlog_for_port(int port, const tt_errent **out);
/* Print every entry with tap_diag (for failures). */
void tt_errlog_dump(void);

/* A copy of base with handle_error = tt_log_error, in static storage
 * (one per base table). */
const ss_server_ops *tt_logging_ops(const ss_server_ops *base);

/* ------------------------------------------------------------------ */
/* TLS servers                                                         */
/* ------------------------------------------------------------------ */

/* ss_tls_options_init(o) with the test server certificate and key. */
void tt_server_options(ss_tls_options *o);
/* ss_tls_config_new(o); bails out when it fails. */
ss_tls_config *tt_config(const ss_tls_options *o);
/* A server of kind ops (handle_error = tt_log_error) with model m and
 * handler h, using cfg; not serving yet.  Bails out when TLS cannot be
 * set. */
ss_server *tt_tls_server(const ss_server_ops *ops, const ss_mixin *m,
			 const ss_handler *h, ss_tls_config *cfg);

/* ------------------------------------------------------------------ */
/* A server in its own process                                         */
/* ------------------------------------------------------------------ */

/*
 * Fork a process that runs ss_server_serve_forever(s) on its only thread
 * (SIGTERM shuts it down; it frees the server and _exits).  For the
 * forking model with TLS: a process must not fork while another of its
 * threads may hold an OpenSSL lock (the child would block on it forever),
 * and this test process runs TLS clients on its threads.  Call it while
 * no other thread of this process uses OpenSSL.  Returns the pid.
 */
pid_t tt_serve_in_process(ss_server *s);
/* SIGTERM the server process and reap it within seconds (SIGKILL after
 * that).  Its exit status (0 when serve_forever returned 0), or -1 when
 * it had to be killed. */
int tt_stop_process(pid_t pid, double seconds);

/* VmRSS of this process in KiB, or -1. */
long tt_rss_kib(void);

#endif /* TLSUTIL_H */
