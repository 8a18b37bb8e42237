/*
 * forking.c - the forking model (Python's ForkingMixIn): one child
 * process per request.
 *
 * The parent tracks its children as {pid, pidfd, conn fd}.  The pidfd
 * (when pidfd_open works) lets it sleep in poll() until any child ends;
 * without one it polls waitpid(WNOHANG) every 10 ms.  Children are only
 * ever reaped by pid, never with waitpid(-1) or wait(): a process the
 * application forked itself stays waitable with its own status.
 *
 * For a stream request the parent keeps its copy of the connection until
 * the child is reaped, so when server_close's grace period expires it can
 * shutdown() the connection and the child's blocked I/O returns.  It
 * first sets the child's cut mark, one shared page per child, so the
 * child reports "request cut after its grace period" instead of taking
 * the shutdown for the client's EOF (without the page, mmap having
 * failed, it does take it for EOF).  The parent never half-closes the
 * connection otherwise: the child owns the conversation.
 *
 * Only the loop's thread (and server_close / destroy, which run after the
 * loop stopped) change the child table; the mutex makes active_count safe
 * from any thread.  A forked child touches neither the mutex nor the
 * table's memory beyond closing its sibling descriptors.
 */
#include "ss_internal.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FALLBACK_PAUSE_MS 10	/* waitpid polling step without pidfds */
#define ABORT_WAIT 2.0		/* seconds children get after shutdown() */

/* One child process running one request. */
struct child {
	pid_t pid;
	int pidfd;		/* -1 when pidfd_open failed */
	int conn_fd;		/* parent's copy of the connection; -1 for
				   datagram requests */
	struct ss__cut_mark *mark;	/* shared with the child, or NULL */
};

/* The mixin's state (server->mixin_state). */
struct forking {
	pthread_mutex_t mu;	/* guards n against active_count readers */
	struct child *v;	/* the children, unordered */
	struct pollfd *pfd;	/* scratch for poll(): cap + 1 */
	size_t n, cap;
};

static struct forking *state_of(ss_server *s)
{
	return s->mixin_state;
}

/* ------------------------------------------------------------------ */
/* The child table                                                     */
/* ------------------------------------------------------------------ */

/* Make room for one more child.  Returns 0 or -ENOMEM. */
static int reserve(struct forking *st)
{
	size_t cap = st->cap ? st->cap * 2 : 16;
	struct child *v;
	struct pollfd *p;

	if (st->n < st->cap)
		return 0;
	v = realloc(st->v, cap * sizeof *v);
	if (!v)
		return -ENOMEM;
	st->v = v;
	p = realloc(st->pfd, (cap + 1) * sizeof *p);	/* + the wakeup fd */
	if (!p)
		return -ENOMEM;
	st->pfd = p;
	st->cap = cap;
	return 0;
}

/* A cut mark the parent and one child share (NULL if mmap fails: the
 * child then sees a cut as EOF, as it would without marks). */
static struct ss__cut_mark *new_mark(void)
{
	void *m = mmap(NULL, sizeof(struct ss__cut_mark), PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return m == MAP_FAILED ? NULL : m;
}

static void free_mark(struct ss__cut_mark *m)
{
	if (m)
		munmap(m, sizeof *m);
}

/* Record a new child (room was reserved). */
static void add_child(struct forking *st, pid_t pid, int conn_fd,
		      struct ss__cut_mark *mark)
{
	struct child c = { .pid = pid, .pidfd = pidfd_open(pid, 0),
			   .conn_fd = conn_fd, .mark = mark };

	pthread_mutex_lock(&st->mu);
	st->v[st->n++] = c;
	pthread_mutex_unlock(&st->mu);
}

/* Forget child i (reaped): close its descriptors, fill the hole with
 * the last entry. */
static void remove_child(struct forking *st, size_t i)
{
	ss__close(st->v[i].pidfd);
	ss__close(st->v[i].conn_fd);
	free_mark(st->v[i].mark);
	pthread_mutex_lock(&st->mu);
	st->v[i] = st->v[--st->n];
	pthread_mutex_unlock(&st->mu);
}

/* ------------------------------------------------------------------ */
/* Reaping and waiting                                                 */
/* ------------------------------------------------------------------ */

/* waitpid on one of our children, EINTR retried.  Returns true when it
 * is gone: reaped now, or already reaped by someone else (ECHILD). */
static bool reap_pid(pid_t pid, int flags)
{
	int status;
	pid_t rc;

	do
		rc = waitpid(pid, &status, flags);
	while (rc < 0 && errno == EINTR);
	return rc == pid || (rc < 0 && errno == ECHILD);
}

/* Reap every child that has ended, without blocking.  Walks backwards so
 * the entry moved into a hole was already looked at.  Returns how many
 * were reaped. */
static size_t reap_ended(struct forking *st)
{
	size_t i, n = 0;

	for (i = st->n; i-- > 0;) {
		if (reap_pid(st->v[i].pid, WNOHANG)) {
			remove_child(st, i);
			n++;
		}
	}
	return n;
}

/* Sleep ms milliseconds (the fallback when no child has a pidfd). */
static void pause_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000,
			       .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);	/* EINTR: the caller's loop rechecks */
}

/* Sleep until some child may have ended, wake_fd (if >= 0) is readable,
 * or timeout_ms (-1: forever) passes: poll() on the pidfds; children
 * without one are checked every FALLBACK_PAUSE_MS.  Spurious wake-ups are
 * fine: the caller reaps and loops. */
static void wait_some(struct forking *st, int wake_fd, int timeout_ms)
{
	nfds_t nfds = 0;
	size_t i;

	st->pfd[0].revents = 0;
	if (wake_fd >= 0)
		st->pfd[nfds++] = (struct pollfd){ .fd = wake_fd, .events = POLLIN };
	for (i = 0; i < st->n; i++)
		if (st->v[i].pidfd >= 0)
			st->pfd[nfds++] = (struct pollfd){ .fd = st->v[i].pidfd,
							   .events = POLLIN };
	if (nfds - (wake_fd >= 0) < st->n &&
	    (timeout_ms < 0 || timeout_ms > FALLBACK_PAUSE_MS))
		timeout_ms = FALLBACK_PAUSE_MS;
	if (nfds == 0) {
		pause_ms(timeout_ms);
		return;
	}
	if (poll(st->pfd, nfds, timeout_ms) < 0 && errno != EINTR)
		pause_ms(FALLBACK_PAUSE_MS);	/* e.g. ENOMEM: don't spin */
}

/*
 * Block until at least one child was reaped, the monotonic deadline
 * passes (< 0: none), or (s not NULL) a stop is requested.  Returns the
 * number reaped (0 when there are no children at all), -ETIMEDOUT, or
 * -ECANCELED for the stop.
 */
static int reap_some(ss_server *s, struct forking *st, double deadline)
{
	size_t n;
	int left;

	for (;;) {
		n = reap_ended(st);
		if (n > 0 || st->n == 0)
			return (int)n;
		if (s && ss__stop_pending(s))
			return -ECANCELED;
		left = ss__remaining_ms(deadline);
		if (left == 0)
			return -ETIMEDOUT;
		wait_some(st, s ? ss__srv(s)->wake_fd[0] : -1, left);
		if (s && st->pfd[0].revents)
			__atomic_store_n(&ss__srv(s)->stop_requested, 1, __ATOMIC_RELEASE);
	}
}

/* Reap until no child is left or the deadline passes.  Returns true when
 * none is left. */
static bool reap_all(struct forking *st, double deadline)
{
	while (st->n > 0)
		if (reap_some(NULL, st, deadline) == -ETIMEDOUT)
			return false;
	return true;
}

/* Reap until no child is left or the server's planned cut is due (the
 * plan is read again every SS__CUT_POLL: ss_server_cut from a signal
 * handler).  Returns true when none is left. */
static bool reap_until_cut(ss_server *s, struct forking *st)
{
	double cut, slice;

	while (st->n > 0) {
		cut = ss__cut_deadline(s, NULL);
		if (cut >= 0 && ss__remaining_ms(cut) == 0)
			return false;
		slice = ss__now() + SS__CUT_POLL;
		reap_all(st, cut >= 0 && cut < slice ? cut : slice);
	}
	return true;
}

/* Break the connections of the children still running so their blocked
 * I/O returns, marking each cut after grace seconds first.  Returns true
 * if there was any to break. */
static bool abort_children(struct forking *st, double grace)
{
	bool any = false;
	size_t i;

	for (i = 0; i < st->n; i++) {
		if (st->v[i].conn_fd < 0)
			continue;
		if (st->v[i].mark)
			ss__cut_mark_set(st->v[i].mark, grace);
		ss__sys.shutdown(st->v[i].conn_fd, SHUT_RDWR);
		any = true;
	}
	return any;
}

/* SIGKILL every child left (ours only: by pidfd when there is one, so a
 * recycled pid is never hit) and reap them. */
static void kill_children(struct forking *st)
{
	size_t i;

	for (i = 0; i < st->n; i++) {
		if (st->v[i].pidfd >= 0)
			pidfd_send_signal(st->v[i].pidfd, SIGKILL, NULL, 0);
		else
			kill(st->v[i].pid, SIGKILL);
	}
	while (st->n > 0) {
		reap_pid(st->v[st->n - 1].pid, 0);
		remove_child(st, st->n - 1);
	}
}

/* ------------------------------------------------------------------ */
/* Running a request                                                   */
/* ------------------------------------------------------------------ */

/* The request could not be given a child: report it (once), end and
 * free it, as the loop expects.  Returns rc. */

/* Every child is busy and the server is stopping: the request will not
 * run.  Report it once and end it.  Returns -ECANCELED. */
static int not_started(ss_server *s, ss_request *r)
{
	ss_request_error(r, -ECANCELED,
			 "server shutting down: request not started (all %d children busy)",
			 s->max_children);
	return ss_server_drop_request(s, r, -ECANCELED, NULL);
}

/* The request this child runs (a child runs one). */
static ss_request *child_request;

/* SIGTERM to this child, or its server process died: cut the request at
 * once (marked first, so it is reported as cut, not as the client's EOF),
 * and only this child's.  Async-signal-safe: an atomic store and
 * shutdown(). */
static void child_cut(void)
{
	ss_request *r = child_request;

	ss__cut_mark_set(ss__rq(r)->cut_mark ? ss__rq(r)->cut_mark : &ss__rq(r)->cut, 0);
	if (r->fd >= 0 && !ss__is_dgram(r->server))
		shutdown(r->fd, SHUT_RDWR);
}

/*
 * The child's side of the fork: drop what belongs to the parent (the
 * listener, via the core; the siblings' pidfds and connections, which
 * would otherwise keep those connections open after their own children
 * close them; the program's signal handlers), run the request and _exit:
 * never exit(), which would run the parent's atexit handlers and flush
 * its stdio buffers again.
 */
static void child_main(ss_server *s, ss_request *r, struct ss__cut_mark *mark,
		       pid_t parent)
{
	struct forking *st = state_of(s);
	size_t i;
	int rc;

	ss__rq(r)->cut_mark = mark;
	child_request = r;
	ss__child_signals(parent, child_cut, child_cut);
	ss__child_after_fork(s);
	for (i = 0; i < st->n; i++) {
		ss__close(st->v[i].pidfd);
		ss__close(st->v[i].conn_fd);
		free_mark(st->v[i].mark);
	}
	st->n = 0;	/* this copy of the table is the child's: empty it */
	rc = ss_server_run_request(s, r);
	_exit(rc < 0 ? 1 : 0);
}

/*
 * process_request: reap the children that ended; while max_children
 * (<= 0: no limit) run, wait for one of ours to end; fork a child that
 * runs the request.  The parent keeps a stream connection's fd in the
 * child's record and frees the request without shutting it down.
 * Returns 0, or a negative errno after the failure was reported and the
 * request ended.
 */
static int forking_process_request(ss_server *s, ss_request *r)
{
	struct forking *st = state_of(s);
	struct ss__cut_mark *mark = NULL;
	int rc, conn_fd = -1;
	pid_t pid, parent = getpid();

	reap_ended(st);
	while (s->max_children > 0 && st->n >= (size_t)s->max_children)
		if (reap_some(s, st, -1) == -ECANCELED)
			return not_started(s, r);
	rc = reserve(st);
	if (rc < 0)
		return ss_server_drop_request(s, r, rc, "fork (child table)");
	if (!ss__is_dgram(s))
		mark = new_mark();
	pid = ss__fork_child();
	if (pid < 0) {
		rc = -errno;
		free_mark(mark);
		return ss_server_drop_request(s, r, rc, "fork");
	}
	if (pid == 0)
		child_main(s, r, mark, parent);	/* does not return */
	if (!ss__is_dgram(s)) {
		conn_fd = r->fd;
		r->fd = -1;
	}
	add_child(st, pid, conn_fd, mark);
	ss_request_free(r);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Teardown                                                            */
/* ------------------------------------------------------------------ */

/*
 * server_close: with block_on_close, wait for the children until the
 * server's planned cut (the end of the grace period; none: no limit);
 * then shut down their connections and give them ABORT_WAIT seconds more
 * to report the cut and finish; then SIGKILL and reap what is left.
 * Without block_on_close, reap only those that ended.
 */
static void forking_server_close(ss_server *s, double grace)
{
	struct forking *st = state_of(s);

	if (!s->block_on_close) {
		reap_ended(st);
		return;
	}
	if (reap_until_cut(s, st))
		return;
	ss__cut_deadline(s, &grace);
	if (abort_children(st, grace) && reap_all(st, ss__now() + ABORT_WAIT))
		return;
	kill_children(st);
}

/* service_actions: reap the children that ended, without blocking. */
static void forking_service_actions(ss_server *s)
{
	reap_ended(state_of(s));
}

/* Allocate the (empty) state.  Returns 0 or a negative errno. */
static int forking_init(ss_server *s)
{
	struct forking *st = calloc(1, sizeof *st);
	int err;

	if (!st)
		return -ENOMEM;
	err = pthread_mutex_init(&st->mu, NULL);
	if (err) {
		free(st);
		return -err;
	}
	s->mixin_state = st;
	return 0;
}

/*
 * Free the state and close the descriptors kept for children.  Children
 * still running (close did not wait: block_on_close false) are left
 * alone: they hold their own connections and end by themselves; they
 * stay the application's children, unreaped until it waits for them.
 */
static void forking_destroy(ss_server *s)
{
	struct forking *st = state_of(s);
	size_t i;

	if (!st)
		return;
	for (i = 0; i < st->n; i++) {
		ss__close(st->v[i].pidfd);
		ss__close(st->v[i].conn_fd);
		free_mark(st->v[i].mark);
	}
	pthread_mutex_destroy(&st->mu);
	free(st->v);
	free(st->pfd);
	free(st);
	s->mixin_state = NULL;
}

/* Children running (or ended and not yet reaped). */
static size_t forking_active_count(ss_server *s)
{
	struct forking *st = state_of(s);
	size_t n;

	pthread_mutex_lock(&st->mu);
	n = st->n;
	pthread_mutex_unlock(&st->mu);
	return n;
}

const ss_mixin ss_forking_mixin = {
	.name = "forking",
	.init = forking_init,
	.process_request = forking_process_request,
	.service_actions = forking_service_actions,
	.server_close = forking_server_close,
	.destroy = forking_destroy,
	.active_count = forking_active_count,
};
