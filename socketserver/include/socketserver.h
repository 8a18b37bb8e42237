/*
 * ss.h - Python's socketserver, done the C way.
 *
 * A server (ss_server) is a struct with a const table of socketserver's
 * steps (ss_server_ops), specialised into TCP, UDP, UnixStream and
 * UnixDatagram tables.  A mixin (ss_mixin) chooses how process_request runs
 * a request: inline, a thread per request, a process per request.  A handler
 * (ss_handler) is setup / handle / finish callbacks; it reads and writes with
 * ss_read_* / ss_write_*, which go through the request's transport, so one
 * handler serves every server kind and every model.
 *
 * Conventions (the whole library):
 *   - actions return 0 (or a count) on success and a negative errno on
 *     failure; predicates return bool; constructors return NULL on failure
 *     and fill an ss_error the caller may pass (or NULL).
 *   - a failing call keeps a message naming the step, the address and the
 *     cause ("bind 127.0.0.1:80: Permission denied") in server->errmsg or
 *     in the ss_error.  Nothing here prints, exits or aborts on bad input;
 *     the only output is the default handle_error, which users override.
 *   - ownership: a server created by ss_*_new belongs to the caller, who
 *     must ss_server_free() it.  Requests belong to the server; handlers
 *     never close or free them.  If a constructor fails there is nothing
 *     to undo.
 *
 * Methods for the caller:   ss_server_new (and the ss_<mixin>_<kind>_new
 *   shorthands), ss_server_bind, ss_server_activate, ss_server_serve_forever,
 *   ss_server_handle_request, ss_server_shutdown, ss_server_close,
 *   ss_server_free, ss_server_fileno, ss_server_address.
 * Methods that may be overridden: the slots of ss_server_ops (copy a table,
 *   change slots, pass the copy to ss_server_new).
 * Variables that may be overridden: the option fields of ss_server, set
 *   between ss_server_new and ss_server_serve_forever (the bind options
 *   before ss_server_bind when SS_DEFER_BIND is used).
 */
#ifndef SS_H
#define SS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks what the shared library exports: everything else in it is built
 * with hidden visibility, so only the names declared in these headers are
 * part of the ABI. */
#if defined(__GNUC__) && __GNUC__ >= 4
#define SS_EXTERN __attribute__((visibility("default")))
#else
#define SS_EXTERN
#endif

/* The library's version (SConstruct reads it from here): the shared library
 * is libsocketserver.so.MAJOR.MINOR.PATCH, its SONAME libsocketserver.so.MAJOR. */
#define SS_VERSION_MAJOR 0
#define SS_VERSION_MINOR 1
#define SS_VERSION_PATCH 0

typedef struct ss_server ss_server;
typedef struct ss_request ss_request;
typedef struct ss_handler ss_handler;
typedef struct ss_server_ops ss_server_ops;
typedef struct ss_mixin ss_mixin;
typedef struct ss_transport ss_transport;
typedef struct ss_transport_ops ss_transport_ops;
struct ss_selector_event;
struct ss_selector;

/* ------------------------------------------------------------------ */
/* Errors                                                              */
/* ------------------------------------------------------------------ */

#define SS_ERRMSG_MAX 512

/* An error a constructor or parser hands back: a negative errno and a
 * message naming the step, the address and the cause. */
typedef struct ss_error {
	int code;			/* negative errno, 0 when no error */
	char msg[SS_ERRMSG_MAX];	/* "bind 127.0.0.1:80: Permission denied" */
} ss_error;

/*
 * Text from a peer or a user (a client's socket path, an address typed on
 * a command line, a line a handler quotes) made safe for one log line:
 * printable ASCII as it is, '\' as "\\", newline, return and tab as "\n",
 * "\r", "\t", every other byte (control characters, DEL, >= 0x80, NUL
 * within srclen) as "\xHH".  The library does this to every such text it
 * puts in a message, so a client cannot forge log lines or send escape
 * codes to a terminal.  dst is always NUL-terminated (if dstlen > 0) and
 * never cut inside an escape.  Returns the length of the whole escaped
 * text, as snprintf does: a result >= dstlen means dst was truncated.
 */
SS_EXTERN size_t ss_escape(char *dst, size_t dstlen, const char *src, size_t srclen);

/*
 * The same for a whole message (NUL-terminated) whose parts the library
 * has already escaped, such as request->errmsg with a handler's quote of
 * peer text: backslashes are left as they are, so escaped addresses are
 * not escaped twice; everything else is escaped as by ss_escape.  The
 * default handle_error writes messages through it; so should yours.
 * Returns like ss_escape.
 */
SS_EXTERN size_t ss_escape_message(char *dst, size_t dstlen, const char *msg);

/* ------------------------------------------------------------------ */
/* Addresses                                                           */
/* ------------------------------------------------------------------ */

/*
 * Enough for any ss_addr_format() result: the longest is a unix path of
 * 108 bytes (all of sun_path) whose every byte is escaped as "\xHH",
 * 4 * 108 characters and the NUL.  Sized for that worst case rather than
 * truncated, so a message can always name a peer in full; a buffer that
 * size on the stack of a request's thread or coroutine is small next to
 * the stacks the library gives them.
 */
#define SS_ADDRSTRLEN 440

/* A socket address and its length.  family is AF_INET, AF_INET6 or
 * AF_UNIX.  For AF_UNIX an abstract name has sun_path[0] == '\0' and is
 * written "@name". */
typedef struct ss_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	int family;
} ss_addr;

/*
 * Parse a user's address.  family selects the syntax:
 *   AF_INET, AF_INET6, AF_UNSPEC: "127.0.0.1:9999", "[::1]:9999",
 *       "localhost:9999" (resolved, first result), ":9999" and "*:9999"
 *       (every IPv4 interface), "[::]:9999"; brackets hold an IPv6
 *       literal and nothing else ("[]:9999", "[*]:9999", "[127.0.0.1]:9999"
 *       and "[localhost]:9999" are errors); the port is 0..65535, 0 meaning
 *       an ephemeral port.  AF_INET / AF_INET6 restrict the result to that
 *       family; AF_UNSPEC takes what the text says.
 *   AF_UNIX: a filesystem path ("./echo.sock", "/run/x.sock") or a Linux
 *       abstract name "@name".
 * Returns 0, or a negative errno with err->msg like
 * "cannot parse address 'x:y': bad port 'y'".
 */
SS_EXTERN int ss_addr_parse(ss_addr *out, const char *text, int family, ss_error *err);

/* Write addr as a user would type it ("127.0.0.1:9999", "[::1]:9999",
 * "/tmp/x.sock", "@name", "(unnamed)" for an unbound unix peer) into buf
 * (SS_ADDRSTRLEN bytes are always enough; a shorter buf gets a prefix cut
 * on a whole escape).  A unix path or abstract name is escaped as by
 * ss_escape (a NUL in an abstract name is "\x00"), so the result is safe
 * in a log line whatever path a client bound.  Returns buf. */
SS_EXTERN const char *ss_addr_format(const ss_addr *addr, char *buf, size_t len);

/* The port of an inet address, or -1 for unix addresses. */
SS_EXTERN int ss_addr_port(const ss_addr *addr);

/* ------------------------------------------------------------------ */
/* Server steps (the vtable)                                           */
/* ------------------------------------------------------------------ */

/*
 * One table per concrete server kind (ss_tcp_server_ops, ...).  Every slot
 * is set; a slot that does not apply to a kind points to an explicit no-op.
 * Call slots through the ss_server_* wrappers below, never directly.
 * To override a step, copy a table, change the slot and pass the copy to
 * ss_server_new; the overriding function may call the original slot.
 */
struct ss_server_ops {
	const char *name;	/* "tcp", "udp", "unix_stream", "unix_dgram" */
	int family;		/* default family: AF_INET or AF_UNIX */
	int socktype;		/* SOCK_STREAM or SOCK_DGRAM */

	/* Setting up and tearing down the listening socket. */
	int (*server_bind)(ss_server *server);	   /* create + bind */
	int (*server_activate)(ss_server *server);  /* listen (stream) */
	void (*server_close)(ss_server *server);    /* close listener */
	int (*fileno)(const ss_server *server);

	/* One request's way through the server. */
	/* Fill *out with a new request (accepted connection or one datagram).
	 * Returns 0, or a negative errno (-EAGAIN: nothing ready). */
	int (*get_request)(ss_server *server, ss_request **out);
	bool (*verify_request)(ss_server *server, ss_request *request);
	/* Run the request.  Sync by default; mixins replace this. */
	int (*process_request)(ss_server *server, ss_request *request);
	/* Run the handler (setup, handle, finish) on the request, then send
	 * what it left: the writer's buffer, or the datagram reply (one
	 * datagram to the sender, even an empty one). */
	int (*finish_request)(ss_server *server, ss_request *request);
	/* End the request: say goodbye (FIN, TLS close_notify) and close a
	 * connection; a datagram request has nothing left to end, its reply
	 * went out in finish_request.  Called exactly once per request. */
	void (*shutdown_request)(ss_server *server, ss_request *request);
	/* Release the request's descriptor (no half-close). */
	void (*close_request)(ss_server *server, ss_request *request);

	/* Hooks. */
	/* A request failed (request != NULL) or the server hit an error it
	 * recovered from (request == NULL, e.g. accept failing with EMFILE).
	 * err is a negative errno; the message is in request->errmsg or
	 * server->errmsg.  Default: one line on stderr. */
	void (*handle_error)(ss_server *server, ss_request *request, int err);
	/* handle_request's timeout expired with nothing to do. */
	void (*handle_timeout)(ss_server *server);
	/* Called on every turn of serve_forever's loop. */
	void (*service_actions)(ss_server *server);
};

SS_EXTERN extern const ss_server_ops ss_tcp_server_ops;
SS_EXTERN extern const ss_server_ops ss_udp_server_ops;
SS_EXTERN extern const ss_server_ops ss_unix_stream_server_ops;
SS_EXTERN extern const ss_server_ops ss_unix_dgram_server_ops;

/* The base implementations, for overriding slots that call up. */
SS_EXTERN bool ss_base_verify_request(ss_server *server, ss_request *request);
SS_EXTERN int ss_base_process_request(ss_server *server, ss_request *request);
SS_EXTERN int ss_base_finish_request(ss_server *server, ss_request *request);
SS_EXTERN void ss_base_handle_error(ss_server *server, ss_request *request, int err);
SS_EXTERN void ss_base_handle_timeout(ss_server *server);
SS_EXTERN void ss_base_service_actions(ss_server *server);

/* ------------------------------------------------------------------ */
/* Mixins: how process_request runs a request                          */
/* ------------------------------------------------------------------ */

/*
 * A mixin replaces process_request and adds teardown partners.  The server
 * keeps the mixin's private state in server->mixin_state.
 *
 * Every slot but name may be NULL, and the library checks each at its one
 * call site: a NULL init, service_actions, server_close or destroy has
 * nothing to do; a NULL active_count means nothing is ever in flight
 * between loop turns; a NULL process_request runs the request inline
 * through the server's own ops->process_request (the sync model is the
 * mixin with no slot at all).  The models are listed by ss_mixin_at().
 */
struct ss_mixin {
	const char *name;	/* the model's name, as -m takes it */
	/* Allocate mixin state.  Returns 0 or a negative errno. */
	int (*init)(ss_server *server);
	/* Replaces ops->process_request.  Owns the request from here on:
	 * it must (eventually, in whatever context) call
	 * ss_server_run_request() and ss_request_free(), or, when it cannot
	 * start it, ss_server_drop_request(). */
	int (*process_request)(ss_server *server, ss_request *request);
	/* Called on every turn of the loop, after ops->service_actions. */
	void (*service_actions)(ss_server *server);
	/* Wait for requests in flight (block_on_close), at most grace
	 * seconds (< 0: no limit), then shut down the connections still
	 * open and wait for their handlers to return.  Called by
	 * ss_server_close after the listener is closed. */
	void (*server_close)(ss_server *server, double grace);
	/* Free mixin state.  Called once by ss_server_free. */
	void (*destroy)(ss_server *server);
	/* Number of requests in flight (for tests and monitoring). */
	size_t (*active_count)(ss_server *server);

	/* For models that run their own I/O on the loop's selector or
	 * their own loop. */
	/* An event on an fd the mixin registered on ss_server_selector()
	 * with its own data.  A mixin with this slot runs its requests on
	 * the loop, so handle_request runs the loop until its request has
	 * ended (active_count back to what it was). */
	void (*dispatch)(ss_server *server, const struct ss_selector_event *ev);
	/* Seconds until the mixin needs the loop back (its timers); < 0:
	 * no need.  Bounds the loop's wait. */
	double (*next_timeout)(ss_server *server);
	/* Replaces serve_forever (a model whose workers accept, like
	 * prefork).  Must honour ss_server_shutdown like the core loop. */
	int (*serve_forever)(ss_server *server, double poll_interval);
};

/* The models (ss_mixin_at() lists them; the README describes each). */
SS_EXTERN extern const ss_mixin ss_sync_mixin;
SS_EXTERN extern const ss_mixin ss_threading_mixin;
SS_EXTERN extern const ss_mixin ss_forking_mixin;
SS_EXTERN extern const ss_mixin ss_pool_mixin;
SS_EXTERN extern const ss_mixin ss_prefork_mixin;
SS_EXTERN extern const ss_mixin ss_coroutine_mixin;
SS_EXTERN extern const ss_mixin ss_threads_coroutine_mixin;
SS_EXTERN extern const ss_mixin ss_prefork_coroutine_mixin;

/* Find a model by the name it has in ss_mixin.name; NULL if none. */
SS_EXTERN const ss_mixin *ss_mixin_by_name(const char *name);

/* The i-th model (i = 0, 1, ...), NULL past the last: to list them. */
SS_EXTERN const ss_mixin *ss_mixin_at(size_t i);

/* ------------------------------------------------------------------ */
/* Handlers                                                            */
/* ------------------------------------------------------------------ */

/*
 * A handler: callbacks run for every request, in the request's own context
 * (the server's thread under sync, a new thread under threading, a child
 * process under forking).  Each returns 0 or a negative errno; a failure
 * may carry a message set with ss_request_error().
 *   setup    NULL allowed.  If it fails, handle and finish are skipped.
 *   handle   NULL allowed (then the request is just closed).
 *   finish   NULL allowed.  Runs whenever setup succeeded, even when
 *            handle failed.
 * Any failure reaches ops->handle_error exactly once.
 * A handler is read-only shared data: one ss_handler serves all requests.
 */
struct ss_handler {
	int (*setup)(ss_request *request);
	int (*handle)(ss_request *request);
	int (*finish)(ss_request *request);
	size_t state_size;	/* bytes of zeroed per-request state at
				   request->state; default 0 (state NULL) */
	double timeout;		/* per-connection I/O timeout, seconds;
				   <= 0 means none (default none) */
	bool nodelay;		/* set TCP_NODELAY on TCP connections
				   (default false, as in Python) */
	void *data;		/* user's, shared by all requests */
};

/* ------------------------------------------------------------------ */
/* Transport: how a request's bytes move                               */
/* ------------------------------------------------------------------ */

/*
 * The stream reader and writer call these and never read()/write() the fd
 * themselves, so TLS and coroutine transports plug in under unchanged
 * handlers.  recv/send return a count, 0 for EOF (recv), or a negative
 * errno (-ETIMEDOUT when the request's timeout expired).  They retry EINTR.
 */
struct ss_transport_ops {
	const char *name;
	ssize_t (*recv)(ss_transport *t, void *buf, size_t len);
	ssize_t (*send)(ss_transport *t, const void *buf, size_t len);
	/* Say goodbye (half-close the write side, TLS close_notify).
	 * Returns 0 or a negative errno. */
	int (*shutdown)(ss_transport *t);
	/* Release the transport's own resources (not the fd). */
	void (*destroy)(ss_transport *t);
};

struct ss_transport {
	const ss_transport_ops *ops;
	ss_request *request;	/* owner */
	int fd;
	int timeout_ms;		/* -1: block forever */
};

/* The plain-socket transport: recv/send with MSG_NOSIGNAL, EINTR retried,
 * poll() bounded by timeout_ms. */
SS_EXTERN extern const ss_transport_ops ss_plain_transport_ops;

/*
 * A layer wraps a stream request's transport in the request's own context
 * (its thread or child, never the accept loop), before handler setup: TLS
 * is one.  wrap returns 0, or a negative errno with the reason recorded by
 * ss_request_error(); a failed wrap is reported like a failed setup
 * (handle_error once; setup, handle and finish skipped).
 */
typedef struct ss_layer {
	const char *name;
	int (*wrap)(ss_request *request, void *data);
} ss_layer;

/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */

/* A request: one accepted connection or one datagram.  Owned by the
 * server; valid from get_request to shutdown_request + ss_request_free. */
struct ss_request {
	ss_server *server;
	int fd;			/* connection socket; for datagram servers
				   the server's socket (do not close) */
	ss_addr client;		/* the peer's address */
	void *state;		/* handler->state_size zeroed bytes, or NULL */
	void *data;		/* free for the user */

	/* Datagram input (datagram kinds): the whole datagram. */
	unsigned char *packet;
	size_t packet_len;

	/* Why it failed, for handle_error (set with ss_request_error). */
	int errcode;			/* first failure, negative errno */
	char errmsg[SS_ERRMSG_MAX];	/* its message */
	/* For mixins. */
	struct ss_request *next, *prev;	/* mixin bookkeeping */
	void *mixin_data;		/* mixin's per-request data */

	/* The library's own bookkeeping (buffers, transport, deadlines)
	 * lives in a struct of its own around this one. */
};

/*
 * Stream and datagram I/O for handlers.  On a stream request they read
 * from / write to the connection through its transport with the reader's
 * and writer's buffers; on a datagram request reads consume the received
 * datagram and writes build the reply, which finish_request sends as one
 * datagram to the sender after the handler's finish (even when empty).
 *
 * ss_read_some   waits for and returns what is there (up to len): a count,
 *                0 at EOF, or a negative errno.
 * ss_read_view   like ss_read_some without a copy: points *data at up to
 *                max bytes of input inside the reader's buffer (or the
 *                datagram) and consumes them.  *data stays valid until
 *                the next read on the request.  A handler that has no
 *                buffer of its own keeps coroutine stacks small.
 * ss_read_exact  reads exactly len bytes: len, fewer only when EOF came
 *                first, or a negative errno.
 * ss_read_line   reads up to and including '\n' and NUL-terminates: the
 *                length (0 at EOF; a last line without '\n' is returned
 *                as it is), or -EMSGSIZE when no newline came within
 *                max - 1 bytes (those bytes are consumed and left in buf,
 *                the request's error message says so), or a negative errno.
 * ss_write_all   buffers and writes all len bytes: len or a negative errno.
 * ss_flush       writes what is buffered (stream; no-op for datagrams).
 */
SS_EXTERN ssize_t ss_read_some(ss_request *request, void *buf, size_t len);
SS_EXTERN ssize_t ss_read_view(ss_request *request, const void **data, size_t max);
SS_EXTERN ssize_t ss_read_exact(ss_request *request, void *buf, size_t len);
SS_EXTERN ssize_t ss_read_line(ss_request *request, char *buf, size_t max);
SS_EXTERN ssize_t ss_write_all(ss_request *request, const void *buf, size_t len);
SS_EXTERN int ss_flush(ss_request *request);

/* Sleep in a handler.  Under the coroutine model only this request's
 * coroutine waits; elsewhere the thread sleeps.  Returns 0 (or a negative
 * errno). */
SS_EXTERN int ss_sleep(double seconds);

/* Change this request's I/O timeout (seconds, <= 0 for none). */
SS_EXTERN void ss_request_set_timeout(ss_request *request, double seconds);

/* Record why the request failed, printf-style, and return err (a negative
 * errno) so handlers can write: return ss_request_error(r, -EPROTO, ...). */
SS_EXTERN int ss_request_error(ss_request *request, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Forget a recorded failure, for a handler that recovered from it (say a
 * timeout it chose to ride out), so a later failure reports its own
 * message. */
SS_EXTERN void ss_request_clear_error(ss_request *request);

/* The client address formatted, into buf of SS_ADDRSTRLEN bytes. */
SS_EXTERN const char *ss_request_peer(const ss_request *request, char *buf, size_t len);

/* ------------------------------------------------------------------ */
/* Servers                                                             */
/* ------------------------------------------------------------------ */

/* flags for ss_server_new */
#define SS_DEFER_BIND 0x1	/* bind_and_activate = False: the caller sets
				   options, then ss_server_bind + activate */

struct ss_server {
	/* --- identity (read-only) --- */
	const ss_server_ops *ops;
	const ss_mixin *mixin;
	const ss_handler *handler;
	ss_addr requested;	/* the address as parsed */
	ss_addr address;	/* the bound address (real port after bind) */
	int fd;			/* listening / datagram socket, -1 if none */
	char errmsg[SS_ERRMSG_MAX];	/* last error's message */
	void *data;		/* free for the user */

	/* --- options, with their defaults (set by ss_server_new) --- */
	bool allow_reuse_address;  /* SO_REUSEADDR; default true for TCP
				      and UDP (every inet kind), false for
				      unix kinds (Python: False) */
	bool allow_reuse_port;	   /* SO_REUSEPORT, inet only; default false */
	int request_queue_size;	   /* listen backlog; default SOMAXCONN
				      (Python: 5) */
	size_t max_packet_size;	   /* datagram buffer; default 65536, a whole
				      64 KiB datagram (Python: 8192) */
	double timeout;		   /* handle_request's default timeout,
				      seconds; < 0 none (default none) */
	bool block_on_close;	   /* server_close waits for requests in
				      flight; default true */
	double close_grace;	   /* server_close waits at most this long,
				      then shuts down open connections;
				      < 0: no limit (default, as Python) */
	bool daemon_threads;	   /* threading: don't wait for handler
				      threads at close; default false */
	size_t thread_stack_size;  /* threading: default SS_THREAD_STACK */
	int max_children;	   /* forking: default 40 */
	double accept_backoff_max; /* EMFILE/ENFILE: longest pause between
				      accept attempts; default 1.0 s */
	int workers;		   /* pool threads, prefork processes,
				      coroutine threads; default 0: pool 16,
				      prefork 4 per core, the coroutine
				      compositions one per core (the CPUs
				      of the affinity mask) */
	int queue_size;		   /* pool: accepted requests waiting for a
				      thread; default 0: 4 x workers */
	int max_requests;	   /* prefork: recycle a worker after this
				      many requests; default 0: never */
	int min_spare, max_spare;  /* prefork: idle workers to keep between
				      (workers is then the maximum);
				      default 0, 0: a fixed pool */
	size_t coroutine_stack_size; /* default SS_COROUTINE_STACK */
	const char *selector;	   /* the loop's selector backend: "epoll",
				      "poll", "select"; NULL (default): the
				      best the platform has */

	/* --- for mixins --- */
	void *mixin_state;	/* the mixin's own state (its init sets it) */

	/* The library's own bookkeeping lives in a struct of its own around
	 * this one: nothing more here for users to touch. */
};

/* The default coroutine stack (plus a guard page); pages cost memory only
 * when touched, so 10,000 fit easily. */
#define SS_COROUTINE_STACK (128u * 1024u)

/* The default thread stack: small, so thousands of connections fit. */
#define SS_THREAD_STACK (256u * 1024u)

/*
 * Create a server of a kind (ops) running requests with a model (mixin,
 * NULL for sync) and a handler.  Unless flags has SS_DEFER_BIND, the socket
 * is created, bound and activated (listening) before return.
 * Returns the server, or NULL with err filled ("bind 127.0.0.1:80:
 * Permission denied").  A failed construction leaves nothing to free.
 */
SS_EXTERN ss_server *ss_server_new(const ss_server_ops *ops, const ss_mixin *mixin,
			 const char *address, const ss_handler *handler,
			 int flags, ss_error *err);

/* The predefined compositions, one line each in the source. */
SS_EXTERN ss_server *ss_tcp_server_new(const char *address, const ss_handler *h, ss_error *err);
SS_EXTERN ss_server *ss_udp_server_new(const char *address, const ss_handler *h, ss_error *err);
SS_EXTERN ss_server *ss_unix_stream_server_new(const char *path, const ss_handler *h, ss_error *err);
SS_EXTERN ss_server *ss_unix_dgram_server_new(const char *path, const ss_handler *h, ss_error *err);
SS_EXTERN ss_server *ss_threading_tcp_server_new(const char *address, const ss_handler *h, ss_error *err);
SS_EXTERN ss_server *ss_threading_udp_server_new(const char *address, const ss_handler *h, ss_error *err);
SS_EXTERN ss_server *ss_threading_unix_stream_server_new(const char *path, const ss_handler *h, ss_error *err);
SS_EXTERN ss_server *ss_threading_unix_dgram_server_new(const char *path, const ss_handler *h, ss_error *err);
SS_EXTERN ss_server *ss_forking_tcp_server_new(const char *address, const ss_handler *h, ss_error *err);
SS_EXTERN ss_server *ss_forking_udp_server_new(const char *address, const ss_handler *h, ss_error *err);
SS_EXTERN ss_server *ss_forking_unix_stream_server_new(const char *path, const ss_handler *h, ss_error *err);
SS_EXTERN ss_server *ss_forking_unix_dgram_server_new(const char *path, const ss_handler *h, ss_error *err);

/* The bounded models' compositions (defined with their mixins). */
SS_EXTERN ss_server *ss_pool_tcp_server_new(const char *address, const ss_handler *h, ss_error *err);
SS_EXTERN ss_server *ss_pool_udp_server_new(const char *address, const ss_handler *h, ss_error *err);
SS_EXTERN ss_server *ss_pool_unix_stream_server_new(const char *path, const ss_handler *h, ss_error *err);
SS_EXTERN ss_server *ss_prefork_tcp_server_new(const char *address, const ss_handler *h, ss_error *err);
SS_EXTERN ss_server *ss_prefork_udp_server_new(const char *address, const ss_handler *h, ss_error *err);
SS_EXTERN ss_server *ss_prefork_unix_stream_server_new(const char *path, const ss_handler *h, ss_error *err);
SS_EXTERN ss_server *ss_coroutine_tcp_server_new(const char *address, const ss_handler *h, ss_error *err);
SS_EXTERN ss_server *ss_coroutine_udp_server_new(const char *address, const ss_handler *h, ss_error *err);
SS_EXTERN ss_server *ss_coroutine_unix_stream_server_new(const char *path, const ss_handler *h, ss_error *err);
SS_EXTERN ss_server *ss_prefork_coroutine_tcp_server_new(const char *address, const ss_handler *h, ss_error *err);
SS_EXTERN ss_server *ss_prefork_coroutine_udp_server_new(const char *address, const ss_handler *h, ss_error *err);
SS_EXTERN ss_server *ss_prefork_coroutine_unix_stream_server_new(const char *path, const ss_handler *h, ss_error *err);
SS_EXTERN ss_server *ss_threads_coroutine_tcp_server_new(const char *address, const ss_handler *h, ss_error *err);
SS_EXTERN ss_server *ss_threads_coroutine_udp_server_new(const char *address, const ss_handler *h, ss_error *err);
SS_EXTERN ss_server *ss_threads_coroutine_unix_stream_server_new(const char *path, const ss_handler *h, ss_error *err);

/* Create, bind, listen: for SS_DEFER_BIND servers.  0 or a negative errno
 * with server->errmsg set. */
SS_EXTERN int ss_server_bind(ss_server *server);
SS_EXTERN int ss_server_activate(ss_server *server);

/*
 * Serve until ss_server_shutdown.  poll_interval (seconds) only paces
 * service_actions; shutdown does not wait for it.  Returns 0 after a
 * shutdown request, or a negative errno if the wait itself failed.
 * A shutdown requested before serve_forever starts makes it return at
 * once; the request is consumed, so the next call serves again.
 */
SS_EXTERN int ss_server_serve_forever(ss_server *server, double poll_interval);

/*
 * Wait for and handle one request.  timeout bounds only the wait for a
 * request to come, as in Python; < 0 uses server->timeout (which may be
 * < 0: no limit).  Returns 0 when a request was handled, -ETIMEDOUT after
 * calling handle_timeout, -ECANCELED when shutdown was requested (before
 * a request came, or before a coroutine's request ended: server_close
 * then finishes it).  "Handled" as the model handles a request: a model
 * whose process_request hands it to another thread or process
 * (threading, forking, pool) has started it; a model that runs requests
 * on the loop's selector (coroutine) is driven by this call until the
 * request has ended; the others run it to its end in the caller, as sync
 * does, prefork, threads+coroutine and prefork+coroutine included: their
 * workers exist only inside serve_forever.
 */
SS_EXTERN int ss_server_handle_request(ss_server *server, double timeout);

/*
 * Ask serve_forever to stop.  Returns at once; async-signal-safe; may be
 * called from any thread, from a handler (even in a forked child), from a
 * signal handler, and before serve_forever starts.  Unlike Python it does
 * not wait: ss_server_close waits for the loop to end.  A loop that stops
 * consumes every shutdown asked for until it has stopped; one asked for
 * while no loop runs is kept for the next serve_forever / handle_request,
 * which returns at once (ss_server_clear_shutdown forgets it).
 */
SS_EXTERN void ss_server_shutdown(ss_server *server);

/*
 * Forget a shutdown (or cut) requested while no loop ran, which the next
 * serve_forever or handle_request would otherwise take as its own and
 * return at once.  Call only while nothing serves the server.
 */
SS_EXTERN void ss_server_clear_shutdown(ss_server *server);

/*
 * Stop serving and release the listener: if serve_forever runs in another
 * thread it is asked to stop and waited for; the listening socket is
 * closed (a unix socket file we created is removed); then requests in
 * flight are waited for as block_on_close and close_grace say.
 * Idempotent.  Must not be called from a handler.
 */
SS_EXTERN void ss_server_close(ss_server *server);

/* Same, with an explicit grace period (seconds; < 0: no limit).  The
 * grace applies under every model: to a request running inline on the
 * loop (sync, prefork workers) as to threads, children and coroutines. */
SS_EXTERN void ss_server_close_within(ss_server *server, double grace);

/*
 * Stop now: like ss_server_shutdown, and the requests in flight are cut at
 * once instead of being given the rest of their grace period, by the close
 * in progress or the one to come (each is reported once as cut, and its
 * finish runs).  For a second SIGINT / SIGTERM during the grace period.
 * Returns at once; async-signal-safe; any thread.
 */
SS_EXTERN void ss_server_cut(ss_server *server);

/* Close (if needed) and free the server.  NULL is fine. */
SS_EXTERN void ss_server_free(ss_server *server);

/* The listening / datagram socket, or -1. */
SS_EXTERN int ss_server_fileno(const ss_server *server);

/* The bound address as text ("127.0.0.1:43121"), into buf. */
SS_EXTERN const char *ss_server_address(const ss_server *server, char *buf, size_t len);

/* Put a layer (TLS, ...) under every request's handler.  Stream servers
 * only: -EPROTONOSUPPORT with a message for datagram servers.  Call before
 * serving; data must outlive the server. */
SS_EXTERN int ss_server_set_layer(ss_server *server, const ss_layer *layer, void *data);

/* The loop's selector (created by the first serve_forever or
 * handle_request, or by this call), for mixins that register their own
 * fds; NULL with server->errmsg set if it cannot be created. */
SS_EXTERN struct ss_selector *ss_server_selector(ss_server *server);

/* Requests in flight (threads or children running handlers). */
SS_EXTERN size_t ss_server_active_count(ss_server *server);

/*
 * Datagrams a datagram server dropped without running the handler,
 * because a reply would come back to the server itself (the source is
 * the server's own address) or could go nowhere (source port 0).  The
 * first one is reported through handle_error, later ones only counted.
 * Counts the drops of every worker process (prefork); 0 for stream
 * servers.
 */
SS_EXTERN unsigned long long ss_server_dropped_datagrams(const ss_server *server);

/* ------------------------------------------------------------------ */
/* Wrappers over the steps, for mixins and overriding slots            */
/* ------------------------------------------------------------------ */

/* Run a request to its end in the current context: finish_request, then
 * on failure handle_error (once), then shutdown_request.  Does not free
 * the request.  Returns finish_request's result. */
SS_EXTERN int ss_server_run_request(ss_server *server, ss_request *request);

/* A mixin could not start the request (no thread, no child, no room, the
 * server stopping): record "WHAT: <strerror(err)>" (what NULL: keep the
 * message already recorded with ss_request_error, or say it was not
 * started), report it once to handle_error, end it and free it, as every
 * mixin must for a request it does not run.  Returns err. */
SS_EXTERN int ss_server_drop_request(ss_server *server, ss_request *request, int err,
				     const char *what);

/* End a request exactly once (later calls do nothing). */
SS_EXTERN void ss_server_shutdown_request(ss_server *server, ss_request *request);

/* A stream request's transport: the plain one, or the one a layer put
 * over it.  A layer's wrap reads it, builds its own transport over it and
 * installs that with ss_request_set_transport; the request then calls the
 * new transport's destroy when it is freed (which releases the inner one
 * as it sees fit).  NULL for datagram requests. */
SS_EXTERN ss_transport *ss_request_transport(ss_request *request);
SS_EXTERN void ss_request_set_transport(ss_request *request, ss_transport *transport);

/* Free a request and its buffers; it must have been shut down. */
SS_EXTERN void ss_request_free(ss_request *request);

#ifdef __cplusplus
}
#endif

#endif /* SS_H */
