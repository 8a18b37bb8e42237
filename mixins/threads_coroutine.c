/*
 * threads_coroutine.c - the "threads+coroutine" model: `workers` threads
 * (0: one per online CPU), each with its own selector and its own loop of
 * coroutines (the scheduler of coroutine.c), each accepting on the shared
 * non-blocking listener itself.  One server uses every core from one
 * process.
 *
 * The mixin replaces serve_forever: the calling thread starts the workers
 * (once: they outlive serve_forever until server_close), lets them accept,
 * waits on the server's wakeup pipe for ss_server_shutdown, then stops
 * their accepting and returns; requests in flight keep running on their
 * workers, as handler threads do under threading.  server_close tells
 * the workers to finish their coroutines within the grace period (then
 * cut them), and joins them.
 *
 * The controller talks to a worker through a pipe (a byte: "look at the
 * control state") and waits for its acknowledgement, so when
 * serve_forever returns no worker watches or accepts on the listener.
 * Accepts are serialised by a mutex taken with trylock (a worker that
 * finds it busy leaves the connection to the one holding it), which also
 * guards server->errmsg, a datagram server's receive buffer and the
 * server's accept back-off episode: the workers take requests with the
 * core's accept policy (ss__take_request), so running out of descriptors
 * pauses every worker's accepts together and is reported once, in the
 * same words as under the other models.
 *
 * As with the coroutine model, a handler that blocks on something its
 * loop cannot see (sleep(), a blocking library) stalls only the requests
 * of its own worker thread.
 */
#include "coroutine.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


/* Markers for a worker's own fds in its selector. */
static char listen_marker, ctl_marker;

struct cthreads;

/* One worker thread and its loop. */
struct worker {
	struct ss__coro_sched q;	/* its coroutines and selector */
	struct cthreads *pool;
	pthread_t tid;
	int ctl[2];			/* [0] watched by the worker */
	unsigned seen;			/* last control generation applied
					   (under pool->ctl_mu) */
	bool listening;			/* listener on q.sel */
	double backoff_until;		/* listener off q.sel until then
					   (the server's EMFILE pause) */
};

/* The mixin's state (server->mixin_state). */
struct cthreads {
	ss_server *server;
	pthread_mutex_t accept_mu;	/* get_request, server->errmsg */
	pthread_mutex_t ctl_mu;		/* the control state: */
	pthread_cond_t ctl_cv;
	bool accepting;			/* workers watch the listener */
	unsigned gen;			/* bumped on every change */
	int closing;			/* atomic: drain and exit */
	double deadline;		/* their drain deadline; written
					   before closing is set */
	struct worker *w;		/* the workers (freed by destroy) */
	int n;				/* how many run (atomic: read by
					   active_count), 0: none */
};

static struct cthreads *state_of(ss_server *s)
{
	return s->mixin_state;
}

/* Wake a worker: it reads the control state. */
static void kick(struct worker *w)
{
	ss__wakeup_poke(w->ctl[1]);
}

/* ------------------------------------------------------------------ */
/* The worker                                                          */
/* ------------------------------------------------------------------ */

/* Watch or stop watching the listener on the worker's selector. */
static void listen_on(struct worker *w, bool on)
{
	ss_server *s = w->pool->server;

	if (on && !w->listening && s->fd >= 0)
		w->listening = ss_selector_register(w->q.sel, s->fd,
						     SS_EVENT_READ | SS_EVENT_EXCLUSIVE,
						     &listen_marker) == 0;
	else if (!on && w->listening) {
		ss_selector_unregister(w->q.sel, s->fd);
		w->listening = false;
	}
}

/* Apply the control state: accept or not; acknowledge it.  Returns true
 * when the worker must drain and exit. */
static bool apply_control(struct worker *w)
{
	struct cthreads *st = w->pool;
	unsigned gen;
	bool on;

	ss__wakeup_drain(w->ctl[0]);
	pthread_mutex_lock(&st->ctl_mu);
	gen = st->gen;
	on = st->accepting;
	pthread_mutex_unlock(&st->ctl_mu);
	listen_on(w, on && w->backoff_until == 0);
	pthread_mutex_lock(&st->ctl_mu);
	w->seen = gen;
	pthread_cond_broadcast(&st->ctl_cv);
	pthread_mutex_unlock(&st->ctl_mu);
	return __atomic_load_n(&st->closing, __ATOMIC_ACQUIRE) != 0;
}

/* The listener is ready: take a batch with the core's accept policy
 * (under accept_mu, with trylock: a busy lock means another worker is at
 * it), each request into a coroutine of this worker.  Out of resources,
 * the worker stops watching the listener until the server's pause ends. */
static void accept_some(struct worker *w)
{
	struct cthreads *st = w->pool;
	ss_request *r;
	double resume;
	int i, rc = 0;

	for (i = 0; i < SS__ACCEPT_BATCH && rc == 0 && w->listening; i++) {
		if (pthread_mutex_trylock(&st->accept_mu) != 0)
			return;
		rc = ss__take_request(st->server, &r, &resume);
		pthread_mutex_unlock(&st->accept_mu);
		if (r)
			ss__sched_spawn(&w->q, r);
	}
	if (rc < 0 && rc != -EAGAIN) {
		w->backoff_until = resume;
		listen_on(w, false);
	}
}

/* How long the worker may wait: its next timer, the end of a back-off. */
static double wait_bound(struct worker *w)
{
	double t = ss__sched_next_timeout(&w->q), left;

	if (w->backoff_until > 0) {
		left = w->backoff_until - ss__now();
		if (left < 0)
			left = 0;
		if (t < 0 || left < t)
			t = left;
	}
	return t;
}

/* The end of a back-off: watch the listener again if still accepting. */
static void end_backoff(struct worker *w)
{
	struct cthreads *st = w->pool;
	bool on;

	if (w->backoff_until == 0 || ss__now() < w->backoff_until)
		return;
	w->backoff_until = 0;
	pthread_mutex_lock(&st->ctl_mu);
	on = st->accepting;
	pthread_mutex_unlock(&st->ctl_mu);
	listen_on(w, on);
}

/* One turn: wait, resume the coroutines whose fds are ready, accept,
 * run due timers.  Returns true when the worker must drain and exit. */
static bool worker_turn(struct worker *w)
{
	ss_selector_event ev[64];
	bool ctl = false, listener = false;
	int i, n;

	n = ss_selector_select(w->q.sel, ev, 64, wait_bound(w));
	for (i = 0; i < n; i++) {
		if (ev[i].data == &ctl_marker)
			ctl = true;
		else if (ev[i].data == &listen_marker)
			listener = true;
		else
			ss__sched_dispatch(&w->q, &ev[i]);
	}
	if (ctl && apply_control(w))
		return true;
	if (listener)
		accept_some(w);
	end_backoff(w);
	ss__sched_run_timers(&w->q);
	return false;
}

/* Body of a worker thread: serve until told to close, then finish the
 * coroutines within the deadline and end. */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct cthreads *st = w->pool;

	if (!apply_control(w))
		while (!worker_turn(w))
			;
	listen_on(w, false);
	ss_selector_unregister(w->q.sel, w->ctl[0]);
	ss__sched_drain(&w->q, st->deadline);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Starting and stopping the workers (the controller)                  */
/* ------------------------------------------------------------------ */

/* Free what start_one made for w (its thread has ended or never ran). */
static void free_worker(struct worker *w)
{
	ss__sched_destroy(&w->q);
	ss_selector_free(w->q.sel);
	w->q.sel = NULL;
	ss__close(w->ctl[0]);
	ss__close(w->ctl[1]);
	w->ctl[0] = w->ctl[1] = -1;
}

/* A worker's selector, control pipe and thread.  0 or a negative errno
 * with server->errmsg set (nothing left to undo then). */
static int start_one(ss_server *s, struct cthreads *st, struct worker *w)
{
	ss_error err;
	int rc;

	w->pool = st;
	w->ctl[0] = w->ctl[1] = -1;
	ss__sched_init(&w->q, s, ss_selector_new(s->selector, &err));
	if (!w->q.sel) {
		memcpy(s->errmsg, err.msg, sizeof s->errmsg);
		return err.code;
	}
	if ((rc = ss__wakeup_new(w->ctl)) < 0) {
		ss__set_errno_msg(s->errmsg, rc, "threads+coroutine: socketpair");
		goto out_free;
	}
	rc = ss_selector_register(w->q.sel, w->ctl[0], SS_EVENT_READ, &ctl_marker);
	if (rc < 0) {
		ss__set_errno_msg(s->errmsg, rc, "threads+coroutine: selector");
		goto out_free;
	}
	rc = -ss__sys.pthread_create(&w->tid, NULL, worker_main, w);
	if (rc < 0) {
		ss__set_errno_msg(s->errmsg, rc, "threads+coroutine: start thread");
		goto out_free;
	}
	return 0;

out_free:
	free_worker(w);
	return rc;
}

/* Tell the started workers to drain until deadline and end; join them. */
static void stop_workers(struct cthreads *st, int n, double deadline)
{
	int i;

	st->deadline = deadline;
	__atomic_store_n(&st->closing, 1, __ATOMIC_RELEASE);
	for (i = 0; i < n; i++)
		kick(&st->w[i]);
	for (i = 0; i < n; i++) {
		pthread_join(st->w[i].tid, NULL);
		free_worker(&st->w[i]);
	}
	__atomic_store_n(&st->closing, 0, __ATOMIC_RELEASE);
}

/* The number of workers: the option, or one per CPU it may run on. */
static int worker_count(const ss_server *s)
{
	return s->workers > 0 ? s->workers : ss__cpus();
}

/* Start the workers (not accepting yet).  0 or a negative errno with
 * server->errmsg set and none left running. */
static int start_workers(ss_server *s, struct cthreads *st)
{
	int i, n = worker_count(s), rc;

	free(st->w);
	st->w = calloc((size_t)n, sizeof *st->w);
	if (!st->w)
		return ss__set_errno_msg(s->errmsg, -ENOMEM, "threads+coroutine");
	for (i = 0; i < n; i++) {
		rc = start_one(s, st, &st->w[i]);
		if (rc < 0) {
			stop_workers(st, i, 0);
			return rc;
		}
	}
	__atomic_store_n(&st->n, n, __ATOMIC_RELEASE);
	return 0;
}

/* Make the workers accept or stop accepting, and wait until each one
 * has done so. */
static void set_accepting(struct cthreads *st, bool on)
{
	unsigned gen;
	int i;

	pthread_mutex_lock(&st->ctl_mu);
	st->accepting = on;
	gen = ++st->gen;
	pthread_mutex_unlock(&st->ctl_mu);
	for (i = 0; i < st->n; i++)
		kick(&st->w[i]);
	pthread_mutex_lock(&st->ctl_mu);
	for (i = 0; i < st->n; i++)
		while (st->w[i].seen != gen)
			pthread_cond_wait(&st->ctl_cv, &st->ctl_mu);
	pthread_mutex_unlock(&st->ctl_mu);
}

/* ------------------------------------------------------------------ */
/* serve_forever                                                       */
/* ------------------------------------------------------------------ */

/* serve_forever: the workers accept and serve; this thread waits for
 * shutdown on the wakeup pipe, running service_actions every
 * poll_interval.  Returns 0 after a shutdown, or a negative errno if the
 * workers could not start. */
static int cthreads_serve_forever(ss_server *s, double poll_interval)
{
	struct cthreads *st = state_of(s);
	int interval = ss__timeout_ms(poll_interval);
	int rc = ss__enter_serving(s, false);

	if (rc < 0)
		return rc;
	if (st->n == 0 && (rc = start_workers(s, st)) < 0) {
		ss__leave_serving(s);
		return rc;
	}
	set_accepting(st, true);
	while (!ss__stop_pending(s)) {
		if (ss__wait_fd(ss__srv(s)->wake_fd[0], POLLIN, interval) == 0)
			break;
		s->ops->service_actions(s);
	}
	set_accepting(st, false);
	ss__leave_serving(s);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Teardown and the other slots                                        */
/* ------------------------------------------------------------------ */

/* server_close: the workers finish their coroutines within grace (none
 * without block_on_close), cut the rest, and are joined. */
static void cthreads_server_close(ss_server *s, double grace)
{
	struct cthreads *st = state_of(s);
	double deadline = grace < 0 ? -1 : ss__now() + grace;
	int n = st->n;

	if (n == 0)
		return;
	if (!s->block_on_close)
		deadline = ss__now();
	stop_workers(st, n, deadline);
	__atomic_store_n(&st->n, 0, __ATOMIC_RELEASE);
}

static int cthreads_init(ss_server *s)
{
	struct cthreads *st = calloc(1, sizeof *st);

	if (!st)
		return -ENOMEM;
	st->server = s;
	pthread_mutex_init(&st->accept_mu, NULL);
	pthread_mutex_init(&st->ctl_mu, NULL);
	pthread_cond_init(&st->ctl_cv, NULL);
	s->mixin_state = st;
	return 0;
}

static void cthreads_destroy(ss_server *s)
{
	struct cthreads *st = state_of(s);

	if (!st)
		return;
	cthreads_server_close(s, 0);	/* never closed (a child) */
	free(st->w);
	pthread_mutex_destroy(&st->accept_mu);
	pthread_mutex_destroy(&st->ctl_mu);
	pthread_cond_destroy(&st->ctl_cv);
	free(st);
	s->mixin_state = NULL;
}

/* Coroutines alive on all workers. */
static size_t cthreads_active_count(ss_server *s)
{
	struct cthreads *st = state_of(s);
	int i, n = __atomic_load_n(&st->n, __ATOMIC_ACQUIRE);
	size_t sum = 0;

	for (i = 0; i < n; i++)
		sum += ss__sched_count(&st->w[i].q);
	return sum;
}

const ss_mixin ss_threads_coroutine_mixin = {
	.name = "threads+coroutine",
	.init = cthreads_init,
	.server_close = cthreads_server_close,
	.destroy = cthreads_destroy,
	.active_count = cthreads_active_count,
	.serve_forever = cthreads_serve_forever,
};
