/*
 * ss_tls.h - TLS (OpenSSL 3) as a layer under any stream server and any
 * model.  The handshake runs in the request's own context (its thread or
 * child), bounded by a timeout, never in the accept loop; the stream
 * reader/writer go through the TLS session, so a handler written for
 * plain TCP runs unchanged.
 *
 *   ss_tls_options o;
 *   ss_tls_options_init(&o);
 *   o.cert_file = "server.pem"; o.key_file = "server.key";
 *   ss_tls_config *tls = ss_tls_config_new(&o, &err);     NULL + err.msg
 *   ss_server *s = ss_threading_tcp_server_new("127.0.0.1:8443", &h, &err);
 *   ss_server_use_tls(s, tls);                            0 or -errno
 *   ss_server_serve_forever(s, 0.5);
 *   ss_server_free(s);
 *   ss_tls_config_free(tls);                              after the server
 *
 * Every error names the file and OpenSSL's reason ("certificate
 * server.pem: no start line (not PEM?)", "key server.key does not match
 * certificate server.pem").  Nothing here prints, exits or aborts.
 *
 * Every file (certificates, keys, the CA file) is opened without
 * blocking and must be a regular file of at most 1 MiB, read from the
 * descriptor that was checked: a FIFO, a device or a directory is
 * refused at once ("TLS certificate /tmp/f: not a regular file (a
 * FIFO)") instead of hanging the constructor or a reload.  ca_path must
 * be a directory.
 */
#ifndef SS_TLS_H
#define SS_TLS_H

#include <socketserver.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ss_tls_config ss_tls_config;

enum ss_tls_verify {
	SS_TLS_VERIFY_NONE = 0,	/* no client certificate asked for */
	SS_TLS_VERIFY_REQUEST,	/* asked for; verified if sent */
	SS_TLS_VERIFY_REQUIRE,	/* required and verified */
};

#define SS_TLS_MAX_SNI 16

/* A certificate served for one SNI server name. */
typedef struct ss_tls_sni_cert {
	const char *server_name;	/* "example.test"; "*.example.test" */
	const char *cert_file;		/* PEM chain */
	const char *key_file;		/* PEM key (same passphrase) */
} ss_tls_sni_cert;

/* Configuration, with defaults set by ss_tls_options_init.  Strings are
 * copied by ss_tls_config_new. */
typedef struct ss_tls_options {
	const char *cert_file;		/* PEM certificate chain; required */
	const char *key_file;		/* PEM private key; required */
	const char *key_password;	/* passphrase of an encrypted key; NULL */
	const char *min_version;	/* "1.2" (default) or "1.3" */
	const char *ciphers;		/* TLS 1.2 cipher list; NULL: OpenSSL's */
	const char *ciphersuites;	/* TLS 1.3 suites; NULL: OpenSSL's */
	enum ss_tls_verify verify_client; /* default SS_TLS_VERIFY_NONE */
	const char *ca_file;		/* CAs for client certificates */
	const char *ca_path;		/* or a hashed directory of them */
	const char *alpn;		/* "h2,http/1.1": offered in order of
					   preference; NULL: no ALPN */
	ss_tls_sni_cert sni[SS_TLS_MAX_SNI]; /* extra certificates by name */
	size_t sni_count;
	bool session_tickets;		/* resumption; default true */
	double handshake_timeout;	/* seconds; default 5 */
} ss_tls_options;

SS_EXTERN void ss_tls_options_init(ss_tls_options *o);

/* Load and check everything (files, key/cert match, CA, ciphers).
 * Returns NULL with err filled on the first problem. */
SS_EXTERN ss_tls_config *ss_tls_config_new(const ss_tls_options *o, ss_error *err);

/* Re-read the certificate, key, CA and SNI files while serving: new
 * connections use them, connections in flight keep what they started
 * with.  If anything is wrong the old configuration stays and err says
 * why.  Safe from any thread (not from a signal handler). */
SS_EXTERN int ss_tls_config_reload(ss_tls_config *c, ss_error *err);

/* Free the configuration.  Free every server using it first (it is
 * used for each new connection); connections still running keep the
 * certificates they started with.  NULL is fine. */
SS_EXTERN void ss_tls_config_free(ss_tls_config *c);

/* Serve TLS on a stream server (TCP or unix stream), any model.  TLS
 * connections over TCP get TCP_NODELAY whatever handler->nodelay says:
 * the output is already whole TLS records, and under Nagle the first
 * small reply would wait 40 ms behind the TLS 1.3 session tickets.  The
 * server does not own c: c must outlive it (ss_server_free the server,
 * then ss_tls_config_free c).  One config may serve several servers.
 * -EINVAL for NULL arguments; -EPROTONOSUPPORT for datagram servers
 * (with server->errmsg). */
SS_EXTERN int ss_server_use_tls(ss_server *s, ss_tls_config *c);

/* Inside a handler: what the handshake negotiated.  All return NULL on a
 * request that is not TLS (or when nothing was negotiated). */
SS_EXTERN bool ss_tls_active(const ss_request *r);
SS_EXTERN const char *ss_tls_version(const ss_request *r);	/* "TLSv1.3" */
SS_EXTERN const char *ss_tls_cipher(const ss_request *r);		/* "TLS_AES_256_GCM_SHA384" */
SS_EXTERN const char *ss_tls_alpn(const ss_request *r);		/* "h2" */
SS_EXTERN const char *ss_tls_server_name(const ss_request *r);	/* SNI from the client */
/* The verified client certificate's subject in RFC 2253 order (most
 * specific first: "/O=Test/CN=alice" reads "CN=alice,O=Test"; a subject
 * built as "/CN=alice/O=Test" reads "O=Test,CN=alice"), into
 * buf; NULL if none. */
SS_EXTERN const char *ss_tls_peer_subject(const ss_request *r, char *buf, size_t len);
SS_EXTERN bool ss_tls_session_reused(const ss_request *r);

#ifdef __cplusplus
}
#endif

#endif /* SS_TLS_H */
