/*
 * ss_internal.h - what the library's files share and users do not see:
 * the table of system calls (tests swap entries to inject faults), clock
 * and poll helpers, error-message helpers, the request's life, the stop
 * plan, the mixin slots' call sites.
 *
 * Internal non-static names start with "ss__".  Platform #ifs live here
 * (and, for the context switch, in coroutine/switch.h).
 *
 * The layers, from the bottom, and which may use which (a file includes
 * and calls only its own layer and those below it; nothing calls up,
 * except through a slot of a table it was handed):
 *
 *   socketserver/  sys.c escape.c address.c selector.c: the platform,
 *                  knowing nothing of servers;
 *                  server.c kinds.c: the server, its loop, its kinds;
 *                  request.c transport.c: a request's life and the plain
 *                  transport (the core: the three use each other).
 *   handlers/      the reader and writer: use the core.
 *   layers/        TLS: uses the core's transport interface and request.
 *   coroutine/     the coroutine runtime: uses the core (its hooks:
 *                  ss__wait_hook, ss__buffers).
 *   mixins/        the models: use the core and the coroutine runtime;
 *                  mixin.c (the registry) and compose.c (the
 *                  compositions) are the top and name every model.
 *
 * The core reaches a model only through server->mixin's slots, the
 * handler I/O only through the handler's callbacks, and TLS only through
 * the layer and transport tables.  Examples see only the public headers
 * (socketserver/include/); tests may also include this one.
 */
#ifndef SS_INTERNAL_H
#define SS_INTERNAL_H

#include <socketserver.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0
#endif

/* Sanitizers need deeper stacks than plain builds. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SS__STACK_FACTOR 8u
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SS__STACK_FACTOR 8u
#endif
#endif
#ifndef SS__STACK_FACTOR
#define SS__STACK_FACTOR 1u
#endif

/* ------------------------------------------------------------------ */
/* The library's structs around the public ones                        */
/* ------------------------------------------------------------------ */

/* A cut mark: close broke a request's connection after grace seconds. */
struct ss__cut_mark {
	int cut;		/* atomic: close broke the connection */
	double grace;		/* after this many seconds */
};

/* When requests in flight are cut (see the stop plan below). */
struct ss__stop_plan {
	int64_t start_ns;	/* atomic: monotonic ns the stop began
				   (0: not yet) */
	int64_t cut_ns;		/* atomic: monotonic ns of the cut;
				   INT64_MAX: none planned */
	int64_t grace_ns;	/* the grace they had, for messages */
};

/* A request as the library keeps it: the public part first. */
struct ss__request {
	ss_request pub;
	ss_transport *transport;	/* stream kinds */
	ss_transport plain;		/* storage for the plain transport */
	unsigned char *rbuf;		/* reader buffer */
	size_t rpos, rlen, rcap;	/* consumed, filled, capacity */
	unsigned char *wbuf;		/* writer buffer / datagram reply */
	size_t wlen, wcap;
	bool eof;			/* the peer closed its side */
	bool drained;			/* the last recv emptied the socket */
	bool shut;			/* shutdown_request ran */
	bool setup_ok;
	bool on_loop;			/* runs inline on the loop's thread */
	double stop_deadline;		/* its I/O ends here once shutdown
					   was asked for (0: not yet) */
	struct ss__cut_mark cut;	/* close broke the connection */
	struct ss__cut_mark *cut_mark;	/* where a cut is marked when not in
					   `cut`: a page a forking child shares
					   with its parent; NULL: `cut` */
};

/* A server as the library keeps it: the public part first. */
struct ss__server {
	ss_server pub;
	const ss_layer *layer;		/* set by ss_server_set_layer */
	void *layer_data;
	volatile sig_atomic_t stop_requested;	/* shutdown() called */
	int stop_pokes;			/* atomic: stops between setting the
					   flag and poking the channel */
	int wake_fd[2];			/* wakeup channel: [0] watched, [1]
					   poked */
	int forward_fd;			/* a prefork worker: the parent's
					   wakeup channel, which a handler's
					   shutdown also pokes; else -1 */
	bool serving;			/* inside serve_forever */
	bool closed;			/* server_close ran */
	bool is_child;			/* a forked request child */
	bool unlink_on_close;		/* we created the unix socket file */
	dev_t sock_dev;			/* identity of that file */
	ino_t sock_ino;
	double backoff;			/* current accept backoff, seconds
					   (0: no EMFILE episode) */
	double backoff_end;		/* monotonic time the server's accept
					   pause ends (every accepting loop) */
	double backoff_until;		/* monotonic time the core loop's
					   listener is watched again */
	struct ss_selector *sel;	/* the loop's selector */
	unsigned char *packet_buf;	/* datagram receive buffer */
	size_t packet_cap;		/* its size */
	unsigned long long *dropped;	/* datagrams dropped unanswered
					   (atomic), in memory shared with
					   forked workers; NULL for stream
					   servers */
	void *lock;			/* serve/close synchronisation */
	struct ss__stop_plan stop_plan;	/* when requests in flight are cut */
	struct ss__stop_plan *plan;	/* this server's plan: &stop_plan, or
					   prefork's scoreboard, which its
					   workers read */
	const struct ss__stop_plan *parent_plan; /* a prefork worker: the
					   parent's (shared), else NULL */
};

/* The library's struct around a public request or server.  The argument's
 * type is checked (an inline function, not a cast), and every request and
 * server is allocated as its library struct. */
static inline struct ss__request *ss__rq(const ss_request *r)
{
	return (struct ss__request *)((char *)r - offsetof(struct ss__request, pub));
}

static inline struct ss__server *ss__srv(const ss_server *s)
{
	return (struct ss__server *)((char *)s - offsetof(struct ss__server, pub));
}

/*
 * Every system call the library makes that can fail in interesting ways
 * goes through this table (SQLite's aSyscall[] idea).  Tests replace
 * entries to inject EMFILE, ECONNABORTED, EINTR, short writes and failed
 * thread or process starts; ss__sys_reset() restores the real ones.
 */
struct ss__syscalls {
	int (*socket)(int domain, int type, int protocol);
	int (*bind)(int fd, const struct sockaddr *addr, socklen_t len);
	int (*listen)(int fd, int backlog);
	int (*accept4)(int fd, struct sockaddr *addr, socklen_t *len, int flags);
	int (*connect)(int fd, const struct sockaddr *addr, socklen_t len);
	ssize_t (*recv)(int fd, void *buf, size_t len, int flags);
	ssize_t (*send)(int fd, const void *buf, size_t len, int flags);
	ssize_t (*recvfrom)(int fd, void *buf, size_t len, int flags,
			    struct sockaddr *addr, socklen_t *alen);
	ssize_t (*sendto)(int fd, const void *buf, size_t len, int flags,
			  const struct sockaddr *addr, socklen_t alen);
	int (*poll)(struct pollfd *fds, nfds_t n, int timeout_ms);
	int (*close)(int fd);
	int (*shutdown)(int fd, int how);
	int (*pthread_create)(pthread_t *t, const pthread_attr_t *attr,
			      void *(*fn)(void *), void *arg);
	pid_t (*fork)(void);
	/* the send of a wakeup poke (apart from send, which tests count) */
	ssize_t (*poke)(int fd, const void *buf, size_t len, int flags);
};

extern struct ss__syscalls ss__sys;
void ss__sys_reset(void);

/* Monotonic clock, seconds. */
double ss__now(void);

/* Seconds to a poll() timeout: < 0 -> -1 (forever), else rounded up ms. */
int ss__timeout_ms(double seconds);

/* Remaining ms until deadline (monotonic seconds), >= 0; -1 if deadline<0. */
int ss__remaining_ms(double deadline);

/* Initialise a condition variable whose timed waits run on ss__now's
 * (monotonic) clock, so deadlines ignore wall-clock changes.  0 or a
 * negative errno. */
int ss__cond_init_monotonic(pthread_cond_t *cv);

/* Wait on cv (mu held) until signalled or the monotonic deadline passes
 * (< 0: no deadline).  False when the deadline passed. */
bool ss__cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, double deadline);

/* Attributes for a thread that runs requests: a stack of the server's
 * thread_stack_size times the sanitizer factor, never below
 * PTHREAD_STACK_MIN (0 keeps the system's default, as Python's
 * threading.stack_size(0)); detached if asked.  0 (the caller destroys
 * *a) or a negative errno. */
int ss__thread_attr(const ss_server *server, pthread_attr_t *a, bool detached);

/* The CPUs this process may run on (its affinity mask, as nproc(1)
 * counts them: a server started under taskset or in a cpuset container
 * gets workers for the cores it has, not for every core of the host),
 * or the online CPUs if the mask cannot be read; at least 1, at most
 * 1024. */
int ss__cpus(void);

/* One predefined composition: a kind (ops) plus a model (mixin, NULL:
 * sync), one line each in the source, as ThreadingTCPServer is in
 * Python. */
#define SS__COMPOSE(fn, ops, mixin)					\
	ss_server *fn(const char *address, const ss_handler *h, ss_error *err) \
	{ return ss_server_new(&(ops), (mixin), address, h, 0, err); }

/*
 * Wait until fd is ready for events or timeout_ms passes (-1: forever),
 * retrying EINTR with the remaining time.  Returns 0 when ready,
 * -ETIMEDOUT, or a negative errno.
 */
int ss__wait_fd(int fd, short events, int timeout_ms);

/*
 * A thread that runs coroutines installs its wait function here: any
 * library wait on an fd (a request's I/O that would block, ss_sleep) calls
 * it instead of poll(), so the coroutine yields to its loop.  fd < 0 with
 * events 0 means just sleep timeout_ms.  Returns like ss__wait_fd.  NULL
 * (the default): poll().
 */
extern __thread int (*ss__wait_hook)(int fd, short events, int timeout_ms);

/*
 * Spare stream buffers of a coroutine loop.  While a coroutine runs, the
 * thread-local ss__buffers points at its scheduler's cache: a request that
 * is about to wait for input hands its empty reader and writer buffers
 * back there (and takes them again when input comes), so an idle
 * connection holds no buffer.  NULL elsewhere: buffers live as long as
 * their request.
 */
#define SS__SPARE_BUFFERS 16
struct ss__buffers {
	void *spare[SS__SPARE_BUFFERS];
	size_t n;
};
extern __thread struct ss__buffers *ss__buffers;

/* The size of a stream request's reader and writer buffers. */
#define SS__BUF_SIZE (64u * 1024u)

/* A SS__BUF_SIZE buffer: a spare of the coroutine loop, or a new one
 * (NULL without memory); and giving one of cap bytes back (to the spares
 * if there is room, else to free()). */
unsigned char *ss__buf_get(void);
void ss__buf_put(void *buf, size_t cap);

/* Free the spare buffers of a cache. */
void ss__buffers_clear(struct ss__buffers *b);

/* Free (or give to the spares) a request's reader and writer buffers. */
void ss__request_buffers_free(ss_request *r);

/*
 * Mark the server as served by this thread (ss_server_close then stops
 * and waits for it): -EBUSY if a loop runs already, -EBADF once closed,
 * -EINVAL if need_selector and none could be made; else 0.  Every
 * serve_forever (the core's, prefork's parent, threads+coroutine's)
 * enters and leaves this way.
 */
int ss__enter_serving(ss_server *server, bool need_selector);

/*
 * The mixin's slots, each called here and nowhere else, with the rule
 * for NULL slots written in ss_mixin's comment (socketserver.h): nothing
 * to do, nothing in flight, or the server's own process_request.  m is
 * server->mixin, or a prefork worker's inner model.
 */
int ss__mixin_init(ss_server *server, const ss_mixin *m);
int ss__mixin_process_request(ss_server *server, const ss_mixin *m, ss_request *r);
void ss__mixin_service_actions(ss_server *server, const ss_mixin *m);
void ss__mixin_server_close(ss_server *server, const ss_mixin *m, double grace);
void ss__mixin_destroy(ss_server *server, const ss_mixin *m);
size_t ss__mixin_active_count(ss_server *server, const ss_mixin *m);

/* Requests a loop takes from a ready listener before the others get a
 * turn (every accepting loop: the core's, threads+coroutine's). */
#define SS__ACCEPT_BATCH 16

/* Stop the loop of this process only (ss_server_shutdown also stops a
 * prefork worker's parent, through server->forward_fd): a worker that
 * retires or was told to stop.  Async-signal-safe. */
void ss__stop_loop(ss_server *server);

/* Leave: consume the shutdown request (flag and wakeup bytes) so the next
 * serve_forever serves again, and wake ss_server_close. */
void ss__leave_serving(ss_server *server);

/*
 * The core loop (serve_forever without a mixin's own serve_forever), for
 * models whose workers run the ordinary loop, such as prefork's.
 */
int ss__serve_loop(ss_server *server, double poll_interval);

/*
 * The accept policy, one copy for every loop that takes requests off the
 * listener: the core loop, and threads+coroutine's workers, which call it
 * under one mutex (it keeps the server's back-off episode and writes
 * server->errmsg).  Unless shutdown was requested, get_request; a request
 * goes through verify_request (a refused one is ended and freed here).
 * A failure is sorted out: the transient ones (EAGAIN, ECONNABORTED, ...)
 * pass silently; running out of descriptors or memory starts or goes on
 * with the server's back-off episode, reported to handle_error once per
 * episode as "<server->errmsg> (pausing accepts, retrying for as long as
 * it lasts)"; any other error is reported.
 * Returns 0 when a request was taken: *out is it, now the caller's, or
 * NULL if verify_request refused it; -EAGAIN when none was; or, out of
 * resources, that negative errno with *resume set to the monotonic time
 * until which the caller must stop watching the listener.
 */
int ss__take_request(ss_server *server, ss_request **out, double *resume);

/*
 * In a forked worker that runs a loop of its own: give it its own
 * selector and wakeup pipe (the parent's are shared through fork).
 * wake, if not NULL, is a non-blocking pipe the parent made before the
 * fork and keeps the write end of, to stop this worker; else a new pipe
 * is made.  0 or a negative errno.
 */
int ss__worker_after_fork(ss_server *server, const int wake[2]);

/*
 * Wait until a request's connection is ready for events, like ss__wait_fd.
 * A request running inline on the loop's thread (sync) also watches the
 * wakeup pipe: once shutdown is asked for it has close_grace seconds more
 * (if close_grace >= 0), then its I/O fails with -ECANCELED, so a server
 * with an idle client still stops.
 */
int ss__wait_request(ss_request *request, short events, int timeout_ms);

/*
 * Wakeup channels: a stop request, a "look at your control state" nudge.
 * A socket pair, never a pipe, and pokes use send(MSG_NOSIGNAL): a poke
 * to a process that has already exited (a prefork worker, a dead parent)
 * fails with EPIPE instead of killing the caller with SIGPIPE, whatever
 * the program's signal dispositions.
 *
 * ss__wakeup_new   both ends non-blocking and close-on-exec: [0] is
 *                  watched, [1] poked.  0 or a negative errno.
 * ss__wakeup_poke  one byte, EINTR retried, errors ignored (a full
 *                  channel already holds a wake-up), errno kept:
 *                  async-signal-safe.
 * ss__wakeup_drain read every byte waiting (non-blocking).
 */
int ss__wakeup_new(int fds[2]);
void ss__wakeup_poke(int fd);
void ss__wakeup_drain(int fd);

/* write() that cannot kill the process with SIGPIPE when fd is a pipe or
 * socket nobody reads any more (stderr piped into a program that ended):
 * SIGPIPE is blocked in this thread around the write and, if the write
 * raised it, taken before it is unblocked.  Returns like write(). */
ssize_t ss__write_nosigpipe(int fd, const void *buf, size_t len);

/*
 * In a child process the library forked (a forking child, a prefork
 * worker), called right after the fork with the server's pid: the
 * program's handlers for the signals that steer a server (SIGHUP, SIGINT,
 * SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2; not SIGALRM or SIGCHLD, which a
 * handler may use for its own work) are reset to
 * their defaults (ignored ones stay ignored), since they would act on the
 * parent's server from the child; SIGINT, which a terminal sends to the
 * whole process group, is ignored: the server's process decides.  SIGTERM
 * calls end(); the server process's death (PR_SET_PDEATHSIG as SIGHUP,
 * checked against the race with the fork; a terminal's SIGHUP is ignored
 * like SIGINT) calls orphaned().  Both run in a signal handler: they must
 * be async-signal-safe and end this process's work only.
 */
void ss__child_signals(pid_t parent, void (*end)(void), void (*orphaned)(void));

/* fork() (through ss__sys) with every signal blocked around it, so no
 * signal reaches the child before ss__child_signals has replaced the
 * program's handlers; the parent's mask is restored at once, the child's
 * by ss__child_signals.  Returns like fork(). */
pid_t ss__fork_child(void);

/* Write "<what>: <strerror(-err)>" into buf (SS_ERRMSG_MAX) and return err. */
int ss__set_errno_msg(char *buf, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The NUL-terminated s (NULL: "(null)") escaped by ss_escape into buf of
 * len bytes (truncated to fit), for a message's printf argument.  Returns
 * buf. */
const char *ss__escape_str(char *buf, size_t len, const char *s);

/* Copy a message into an ss_error (if not NULL) with code. */
void ss__error_set(ss_error *err, int code, const char *msg);

/* close() that keeps errno and ignores -1. */
void ss__close(int fd);

/*
 * A new request for fd (owned by the request from now on; for datagram
 * servers pass the server's fd, which the request does not own) and peer.
 * Allocates handler->state_size bytes of state.  Returns NULL on ENOMEM
 * (the caller still owns fd then).
 */
ss_request *ss__request_new(ss_server *server, int fd, const ss_addr *peer);

/* True once a stop was asked for (shutdown, cut, a wakeup seen). */
static inline bool ss__stop_pending(const ss_server *s)
{
	return __atomic_load_n(&ss__srv(s)->stop_requested, __ATOMIC_ACQUIRE) != 0;
}

/* A stop came through the wakeup channel: note it; a worker process lets
 * go of its copy of the listener at once. */
void ss__stop_seen(ss_server *server);

/* True for SOCK_DGRAM servers. */
static inline bool ss__is_dgram(const ss_server *s)
{
	return s->ops->socktype == SOCK_DGRAM;
}

/*
 * Send a datagram request's reply (even empty) to its sender; finish_request
 * calls it after the handler's finish, as it calls ss_flush for a stream
 * request.  Returns 0 or a negative errno (recorded).
 */
int ss__send_reply(ss_request *request);

/* Attach the plain transport to a stream request (fd, timeout). */
void ss__plain_transport_init(ss_request *request);
/* Fill request->plain (fd, the handler's timeout) without attaching it. */
void ss__plain_transport_fill(ss_request *request);

/* The handler's per-connection timeout, and the one applying to the
 * request's I/O now, as poll() milliseconds (-1: none). */
int ss__handler_timeout_ms(const ss_request *request);
int ss__request_timeout_ms(const ss_request *request);

/* Record a failed I/O step ("recv", "send") in the request, naming the
 * timeout for -ETIMEDOUT.  Returns err. */
int ss__io_error(ss_request *request, const char *what, int err);

/* A stream request's transport (the plain one attached if none was), or
 * NULL once its connection is closed. */
ss_transport *ss__request_transport(ss_request *request);

/* Send len bytes through the request's transport, looping over short
 * sends; *sent says how many went out, also on failure.  0 or a negative
 * errno (recorded). */
int ss__send_all(ss_request *request, const unsigned char *p, size_t len, size_t *sent);

/* Lock protecting serve_forever/close ordering and mixin lists. */
struct ss__lock {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t serving_thread;
};

static inline struct ss__lock *ss__lock_of(ss_server *s)
{
	return (struct ss__lock *)ss__srv(s)->lock;
}

/* Forking: called in a new child before it runs its request: marks the
 * server as a child and closes what the child must not keep (the
 * listening socket of stream servers; never unlinks a unix socket). */
void ss__child_after_fork(ss_server *server);

/* The first half of ss_server_run_request: finish_request, and on failure
 * handle_error once.  A mixin that must do bookkeeping before the request
 * is shut down calls this, then ss_server_shutdown_request.  Returns
 * finish_request's result. */
int ss__request_finish(ss_server *server, ss_request *request);

/*
 * The stop plan (server->plan): when the requests still in flight at a
 * stop are cut.  ss_server_close_within plans the cut at the end of its
 * grace, ss_server_cut plans it now; a plan only moves closer and is
 * cleared when a new serve_forever starts.  A prefork parent's plan lives
 * in memory its workers share, so its close reaches them.
 *
 * ss__plan_reset      no stop, no cut.
 * ss__cut_deadline    the earliest planned cut of the server's own plan
 *                     and its parent's (monotonic seconds; -1: none),
 *                     and in *grace (may be NULL) the grace it allows.
 * ss__cond_wait_cut   wait on cv (mu held) until signalled or the cut is
 *                     due; false once it is due.  A cut planned by a
 *                     signal handler cannot signal cv: waits re-read the
 *                     plan every SS__CUT_POLL seconds, as every close-time
 *                     wait does.
 */
#define SS__CUT_POLL 0.05
/* Plan the cut grace seconds from now (< 0: only note the stop began). */
void ss__plan_cut_in(ss_server *server, double grace);
void ss__plan_reset(struct ss__stop_plan *plan);
/* Copy the server's plan to `to` and make `to` the server's plan (prefork
 * moves it into shared memory and back); any thread may read it meanwhile. */
void ss__plan_move(ss_server *server, struct ss__stop_plan *to);
double ss__cut_deadline(const ss_server *server, double *grace);
bool ss__cond_wait_cut(ss_server *server, pthread_cond_t *cv, pthread_mutex_t *mu);

/* Mark a cut after grace seconds (release: a reader that sees the mark
 * sees the grace).  Any thread, or another process for a shared mark. */
void ss__cut_mark_set(struct ss__cut_mark *mark, double grace);

/* Break a connection's I/O so a handler blocked on it returns (used when
 * the close grace period of grace seconds expires): mark the request cut,
 * then shutdown(fd, SHUT_RDWR).  Any thread may call it. */
void ss__request_abort(ss_request *request, double grace);

/* Record "server shutting down: request cut after its GRACE s grace
 * period" in the request (the first error is kept); returns -ECANCELED. */
int ss__request_cut_error(ss_request *request, double grace);

/* If close cut the request's connection (its mark, request->cut_mark
 * or request->cut): its cut error (recorded), else 0.  The stream layer
 * asks after a failed or empty read or write. */
int ss__request_was_cut(ss_request *request);

#endif /* SS_INTERNAL_H */
