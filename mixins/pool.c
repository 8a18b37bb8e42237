/*
 * pool.c - the thread pool model (ThreadPoolMixIn): `workers` threads
 * (default 16) started once, at the first request, and a bounded FIFO of
 * accepted requests (`queue_size`, default 4 x workers) between the loop
 * and them.
 *
 * A full queue stops the loop: process_request waits for room, so no
 * connection is accepted meanwhile and the kernel's listen backlog holds
 * the burst; nothing accepted is dropped and the queue never grows.  If
 * shutdown is asked for while it waits, the request in hand is queued
 * over the bound instead (at most one: the loop accepts nothing after a
 * shutdown), so a stop never waits on handlers stuck with idle clients;
 * server_close then drains or cuts it with the rest.
 *
 * server_close(grace) lets the workers drain the queue and finish the
 * running requests for at most grace seconds; then the running requests'
 * connections are shut down so their handlers return, and the requests
 * still queued are not run: each is reported once to handle_error
 * (-ECANCELED, "server closing: ...") and closed.  Then the threads are
 * joined.  With block_on_close false or daemon_threads, close does not
 * wait: the workers finish the queue and end on their own, and
 * ss_server_free stops and joins what is left.
 *
 * Everything shared is under one mutex.  Requests are linked through
 * request->next (the queue) and next/prev (the running list, so close
 * can abort them).  A worker takes a request off the running list before
 * shutdown_request closes its fd, so an abort never reaches a closed,
 * possibly reused, descriptor (as in threading.c).
 */
#include "ss_internal.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_WORKERS 16
#define QUEUE_PER_WORKER 4

/* The mixin's state (server->mixin_state); fields under mu unless said. */
struct pool {
	pthread_mutex_t mu;
	pthread_cond_t work;		/* a request was queued, or stopping */
	pthread_cond_t drained;		/* a request ended (CLOCK_MONOTONIC) */
	ss_request *head, *tail;	/* the queue, through ->next */
	size_t queued, cap;		/* its length and bound */
	ss_request *running;		/* requests in handlers */
	size_t nrunning;
	size_t idle;			/* workers waiting for work */
	size_t drain_waiters;		/* threads in wait_drained */
	bool stopping;			/* workers exit once the queue is empty */
	bool waiting_room;		/* process_request waits on room_fd */
	int room_fd;			/* eventfd: a slot became free */
	pthread_t *threads;		/* the loop's thread and close only */
	size_t nthreads;
};

/* The pool whose worker this thread is, and the request it runs, if
 * any: a close called from a handler neither waits for, aborts nor joins
 * itself. */
static __thread struct pool *current;
static __thread ss_request *current_request;

static struct pool *state_of(ss_server *s)
{
	return s->mixin_state;
}

/* ------------------------------------------------------------------ */
/* The queue and the running list (call with mu held)                  */
/* ------------------------------------------------------------------ */

static void enqueue(struct pool *p, ss_request *r)
{
	r->next = r->prev = NULL;
	if (p->tail)
		p->tail->next = r;
	else
		p->head = r;
	p->tail = r;
	p->queued++;
}

static ss_request *dequeue(struct pool *p)
{
	ss_request *r = p->head;

	p->head = r->next;
	if (!p->head)
		p->tail = NULL;
	p->queued--;
	r->next = NULL;
	return r;
}

static void link_running(struct pool *p, ss_request *r)
{
	r->prev = NULL;
	r->next = p->running;
	if (p->running)
		p->running->prev = r;
	p->running = r;
	p->nrunning++;
}

static void unlink_running(struct pool *p, ss_request *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		p->running = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->next = r->prev = NULL;
	p->nrunning--;
}

/* ------------------------------------------------------------------ */
/* The worker thread                                                   */
/* ------------------------------------------------------------------ */

/* Wake process_request if it waits for room (eventfd: a wake-up given
 * before it sleeps is kept). */
static void give_room(struct pool *p)
{
	uint64_t one = 1;

	if (p->waiting_room && write(p->room_fd, &one, sizeof one) < 0)
		return;	/* the counter is already non-zero */
}

/* The end of a request that is off the running list: shutdown_request
 * (which closes the fd) and free. */
static void end(ss_server *s, ss_request *r)
{
	ss_server_shutdown_request(s, r);
	ss_request_free(r);
}

/*
 * Take the next request, moving it to the running list; NULL when the
 * pool stops and the queue is empty.  `done`, if not NULL, is the request
 * this worker just ran: it leaves the running list in the same critical
 * section (one lock round trip per request, not two, on the mutex every
 * worker and the loop share) and is ended outside the lock, before this
 * worker sleeps, so its client sees the close at once.
 */
static ss_request *take(ss_server *s, struct pool *p, ss_request *done)
{
	ss_request *r = NULL;

	pthread_mutex_lock(&p->mu);
	if (done) {
		unlink_running(p, done);
		if (p->drain_waiters)
			pthread_cond_broadcast(&p->drained);
		if (!p->head) {
			pthread_mutex_unlock(&p->mu);
			end(s, done);
			done = NULL;
			pthread_mutex_lock(&p->mu);
		}
	}
	while (!p->head && !p->stopping) {
		p->idle++;
		pthread_cond_wait(&p->work, &p->mu);
		p->idle--;
	}
	if (p->head) {
		r = dequeue(p);
		link_running(p, r);
		give_room(p);
	}
	pthread_mutex_unlock(&p->mu);
	if (done)
		end(s, done);
	return r;
}

/* Body of a worker: run requests until the pool stops.  A request leaves
 * the running list (in take) before shutdown_request closes its fd, so
 * an abort from close never reaches a closed, possibly reused, fd. */
static void *worker_main(void *arg)
{
	ss_server *s = arg;
	struct pool *p = state_of(s);
	ss_request *r = NULL;

	current = p;
	while ((r = take(s, p, r))) {
		current_request = r;
		ss__request_finish(s, r);
		current_request = NULL;
	}
	current = NULL;
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Starting the workers                                                */
/* ------------------------------------------------------------------ */

/*
 * Start the workers (s->workers, 0: DEFAULT_WORKERS) and size the queue
 * (s->queue_size, 0: QUEUE_PER_WORKER per worker).  Starting fewer than
 * asked is reported once (request NULL) and the pool runs with those;
 * starting none returns a negative errno with s->errmsg set, and the next
 * request tries again.  Loop thread only.
 */
static int start_workers(ss_server *s, struct pool *p)
{
	size_t want = s->workers > 0 ? (size_t)s->workers : DEFAULT_WORKERS;
	pthread_attr_t attr;
	int err;

	p->threads = calloc(want, sizeof *p->threads);
	if (!p->threads)
		return ss__set_errno_msg(s->errmsg, -ENOMEM, "pool: start %zu threads", want);
	err = -ss__thread_attr(s, &attr, false);
	if (!err) {
		while (!err && p->nthreads < want) {
			err = ss__sys.pthread_create(&p->threads[p->nthreads], &attr,
						     worker_main, s);
			if (!err)
				p->nthreads++;
		}
		pthread_attr_destroy(&attr);
	}
	p->cap = s->queue_size > 0 ? (size_t)s->queue_size : QUEUE_PER_WORKER * want;
	if (!err)
		return 0;
	ss__set_errno_msg(s->errmsg, -err, "pool: start thread %zu of %zu",
			  p->nthreads + 1, want);
	if (p->nthreads > 0) {
		s->ops->handle_error(s, NULL, -err);	/* runs with fewer */
		return 0;
	}
	free(p->threads);
	p->threads = NULL;
	return -err;
}

/* ------------------------------------------------------------------ */
/* process_request                                                     */
/* ------------------------------------------------------------------ */

/* Wait (mu held) until the queue has room or shutdown is asked for:
 * sleeps in poll() on room_fd and the server's wakeup pipe (a condition
 * variable cannot hear ss_server_shutdown, which is async-signal-safe). */
static void wait_room(ss_server *s, struct pool *p)
{
	struct pollfd fds[2];
	uint64_t n;

	while (p->queued >= p->cap && !ss__stop_pending(s)) {
		p->waiting_room = true;
		pthread_mutex_unlock(&p->mu);
		fds[0] = (struct pollfd){ .fd = p->room_fd, .events = POLLIN };
		fds[1] = (struct pollfd){ .fd = ss__srv(s)->wake_fd[0], .events = POLLIN };
		if (poll(fds, 2, -1) > 0 && (fds[1].revents & POLLIN))
			__atomic_store_n(&ss__srv(s)->stop_requested, 1, __ATOMIC_RELEASE);
		if (read(p->room_fd, &n, sizeof n) < 0)
			n = 0;	/* EAGAIN: no wake-up was pending */
		pthread_mutex_lock(&p->mu);
		p->waiting_room = false;
	}
}

/*
 * process_request: start the workers at the first call, wait for room in
 * the queue (the loop stops accepting meanwhile), queue the request and
 * wake a worker.  Returns 0, or a negative errno after the failure was
 * reported and the request ended (no worker could be started).
 */
static int pool_process_request(ss_server *s, ss_request *r)
{
	struct pool *p = state_of(s);
	bool idle;
	int rc;

	if (!p->threads && (rc = start_workers(s, p)) < 0)
		return ss_server_drop_request(s, r, ss_request_error(r, rc, "%s", s->errmsg),
					      NULL);
	pthread_mutex_lock(&p->mu);
	wait_room(s, p);
	enqueue(p, r);
	idle = p->idle > 0;
	pthread_mutex_unlock(&p->mu);
	/* Signalled after the unlock, so the worker it wakes does not
	 * block again at once on the mutex; only when one is idle (a busy
	 * worker takes the request when it comes back to the queue). */
	if (idle)
		pthread_cond_signal(&p->work);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Teardown                                                            */
/* ------------------------------------------------------------------ */

/* Wait (mu held) until the queue is empty and at most `self` requests
 * run, or the server's planned cut is due (now when `now`).  True when
 * drained. */
static bool wait_drained(ss_server *s, struct pool *p, size_t self, bool now)
{
	bool in_time = !now;

	p->drain_waiters++;
	while ((p->queued > 0 || p->nrunning > self) && in_time)
		in_time = ss__cond_wait_cut(s, &p->drained, &p->mu);
	p->drain_waiters--;
	return p->queued == 0 && p->nrunning <= self;
}

/* The grace period is over: report, close and free the requests still
 * queued, without running them. */
static void cut_queued(ss_server *s, ss_request *r, double grace)
{
	ss_request *next;

	for (; r; r = next) {
		next = r->next;
		r->next = NULL;
		ss_request_error(r, -ECANCELED,
				 "server closing: request cut before it ran, after the %.1f s grace period",
				 grace);
		s->ops->handle_error(s, r, -ECANCELED);
		ss_server_shutdown_request(s, r);
		ss_request_free(r);
	}
}

/*
 * Stop the pool: no new work; wait until the server's planned cut (the
 * close's grace period; none: no limit; `now`: none at all) for the queue
 * to drain and the handlers to return; then shut down the running
 * connections (except the caller's own, if a handler calls this) and cut
 * the queued requests; then join every worker but the caller.
 */
static void stop_pool(ss_server *s, struct pool *p, bool now)
{
	size_t self = current == p, i;
	ss_request *r, *cut = NULL;
	double grace = 0;

	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_broadcast(&p->work);
	if (!wait_drained(s, p, self, now)) {
		if (!now)
			ss__cut_deadline(s, &grace);
		cut = p->head;
		p->head = p->tail = NULL;
		p->queued = 0;
		for (r = p->running; r; r = r->next)
			if (r != current_request)
				ss__request_abort(r, grace);
	}
	pthread_mutex_unlock(&p->mu);
	cut_queued(s, cut, grace);
	for (i = 0; i < p->nthreads; i++)
		if (!self || !pthread_equal(p->threads[i], pthread_self()))
			pthread_join(p->threads[i], NULL);
	free(p->threads);
	p->threads = NULL;
	p->nthreads = 0;
}

/* server_close: with block_on_close, stop within grace as stop_pool
 * says; without, or with daemon_threads (as the threading model reads
 * them), only tell the workers to finish the queue and end (destroy
 * stops and joins them). */
static void pool_server_close(ss_server *s, double grace)
{
	struct pool *p = state_of(s);

	if (s->block_on_close && !s->daemon_threads) {
		stop_pool(s, p, false);	/* grace: the server's plan */
		return;
	}
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
}

/* Allocate the state; the workers start with the first request, when
 * the options are final.  Returns 0 or a negative errno. */
static int pool_init(ss_server *s)
{
	struct pool *p = calloc(1, sizeof *p);
	int err;

	if (!p)
		return -ENOMEM;
	p->room_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->room_fd < 0) {
		err = -errno;
		goto out_free;
	}
	err = ss__cond_init_monotonic(&p->drained);
	if (err)
		goto out_close;
	err = -pthread_cond_init(&p->work, NULL);
	if (err)
		goto out_drained;
	err = -pthread_mutex_init(&p->mu, NULL);
	if (err)
		goto out_work;
	s->mixin_state = p;
	return 0;

out_work:
	pthread_cond_destroy(&p->work);
out_drained:
	pthread_cond_destroy(&p->drained);
out_close:
	close(p->room_fd);
out_free:
	free(p);
	return err;
}

/* Free the state.  Workers still there (close did not wait:
 * block_on_close false) are stopped at once: running connections shut
 * down, queued requests cut, threads joined. */
static void pool_destroy(ss_server *s)
{
	struct pool *p = state_of(s);

	if (!p)
		return;
	if (p->threads)
		stop_pool(s, p, true);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->drained);
	close(p->room_fd);
	free(p);
	s->mixin_state = NULL;
}

/* Nothing to do between loop turns: the workers are long-lived. */
static void pool_service_actions(ss_server *s)
{
}

/* Requests queued plus requests in handlers. */
static size_t pool_active_count(ss_server *s)
{
	struct pool *p = state_of(s);
	size_t n;

	pthread_mutex_lock(&p->mu);
	n = p->queued + p->nrunning;
	pthread_mutex_unlock(&p->mu);
	return n;
}

const ss_mixin ss_pool_mixin = {
	.name = "pool",
	.init = pool_init,
	.process_request = pool_process_request,
	.service_actions = pool_service_actions,
	.server_close = pool_server_close,
	.destroy = pool_destroy,
	.active_count = pool_active_count,
};
