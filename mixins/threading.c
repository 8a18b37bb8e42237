/*
 * threading.c - the threading model (Python's ThreadingMixIn): one thread
 * per request.
 *
 * The state keeps, under one mutex: the requests whose handlers run (a
 * doubly linked list through request->next/prev, so close can abort
 * them), the number of threads not yet ended, and the threads that ended
 * and wait to be joined.  A thread puts itself on that list as its last
 * act; service_actions, process_request and server_close join it.  So,
 * unlike Python's _threads list, nothing grows with the number of
 * requests served, whatever block_on_close says.
 *
 * Daemon threads (daemon_threads) are detached and never joined, but are
 * still counted and listed: server_close does not wait for them, and
 * ss_server_free (destroy) aborts them and waits, because they use the
 * server until they return.
 */
#include "ss_internal.h"

#include <stdlib.h>
#include <time.h>

/* One handler thread.  Owned by the thread while it runs; a joinable
 * thread hands it to the to-join list as it ends, a detached one frees
 * it. */
struct thread_rec {
	ss_server *server;
	ss_request *request;
	bool detached;		/* daemon thread: nobody joins it */
	pthread_t tid;		/* set by the thread itself as it ends */
	struct thread_rec *next;	/* on the to-join list */
};

/* The mixin's state (server->mixin_state); every field under mu. */
struct threading {
	pthread_mutex_t mu;
	pthread_cond_t ended;		/* a thread ended (CLOCK_MONOTONIC) */
	ss_request *running;		/* requests that may be aborted */
	size_t count;			/* threads started and not ended */
	struct thread_rec *to_join;	/* ended joinable threads */
};

/* The record of the handler this thread runs, if any: lets server_close
 * called from a handler neither wait for nor abort itself. */
static __thread struct thread_rec *current;

static struct threading *state_of(ss_server *s)
{
	return s->mixin_state;
}

/* ------------------------------------------------------------------ */
/* The active list (call with mu held)                                 */
/* ------------------------------------------------------------------ */

static void link_request(struct threading *st, ss_request *r)
{
	r->prev = NULL;
	r->next = st->running;
	if (st->running)
		st->running->prev = r;
	st->running = r;
}

static void unlink_request(struct threading *st, ss_request *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		st->running = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->next = r->prev = NULL;
}

/* Break the connections of every running request except skip (the
 * caller's own), so handlers blocked on them return; they had grace
 * seconds. */
static void abort_running(struct threading *st, ss_request *skip, double grace)
{
	ss_request *r;

	for (r = st->running; r; r = r->next)
		if (r != skip)
			ss__request_abort(r, grace);
}

/* ------------------------------------------------------------------ */
/* Joining                                                             */
/* ------------------------------------------------------------------ */

/* Join every thread that has ended and free its record.  The joins run
 * without the lock; each thread is at most returning from its body. */
static void reap(struct threading *st)
{
	struct thread_rec *t, *next;

	pthread_mutex_lock(&st->mu);
	t = st->to_join;
	st->to_join = NULL;
	pthread_mutex_unlock(&st->mu);
	for (; t; t = next) {
		next = t->next;
		pthread_join(t->tid, NULL);
		free(t);
	}
}

/* ------------------------------------------------------------------ */
/* The handler thread                                                  */
/* ------------------------------------------------------------------ */

/*
 * ss_server_run_request, with the request leaving the running list
 * between the handler's end and shutdown_request: shutdown_request
 * closes the fd, and an abort (shutdown() under the lock) must never
 * reach a closed, possibly reused, descriptor.  Returns finish_request's
 * result.
 */
static int run_request(ss_server *s, ss_request *r, struct threading *st)
{
	int rc = ss__request_finish(s, r);

	pthread_mutex_lock(&st->mu);
	unlink_request(st, r);
	pthread_mutex_unlock(&st->mu);
	ss_server_shutdown_request(s, r);
	return rc;
}

/* The thread's last act: count itself out and, if joinable, queue itself
 * to be joined.  After the unlock neither the state nor the server may
 * be touched: destroy may free them at once. */
static void end_thread(struct threading *st, struct thread_rec *t)
{
	bool detached = t->detached;

	pthread_mutex_lock(&st->mu);
	if (!detached) {
		t->tid = pthread_self();
		t->next = st->to_join;
		st->to_join = t;
	}
	st->count--;
	pthread_cond_broadcast(&st->ended);
	pthread_mutex_unlock(&st->mu);
	if (detached)
		free(t);
}

/* Body of a handler thread: run the request, free it, end. */
static void *thread_main(void *arg)
{
	struct thread_rec *t = arg;
	ss_server *s = t->server;
	struct threading *st = state_of(s);

	current = t;
	run_request(s, t->request, st);
	ss_request_free(t->request);
	current = NULL;
	end_thread(st, t);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Starting a thread                                                   */
/* ------------------------------------------------------------------ */

/* The request could not be given a thread: report it (once), end and
 * free it, as the loop expects.  Returns rc. */

/*
 * process_request: start a thread that runs the request and frees it.
 * Finished threads are joined first, so a server driven by
 * handle_request alone (no service_actions) does not pile them up.
 * Returns 0, or a negative errno after the failure was reported and the
 * request ended.
 */
static int threading_process_request(ss_server *s, ss_request *r)
{
	struct threading *st = state_of(s);
	struct thread_rec *t;
	pthread_attr_t attr;
	pthread_t tid;
	int rc;

	reap(st);
	t = calloc(1, sizeof *t);
	if (!t)
		return ss_server_drop_request(s, r, -ENOMEM, "start thread");
	t->server = s;
	t->request = r;
	t->detached = s->daemon_threads;
	rc = ss__thread_attr(s, &attr, t->detached);
	if (rc < 0)
		goto out_free_rec;
	pthread_mutex_lock(&st->mu);
	link_request(st, r);
	st->count++;
	pthread_mutex_unlock(&st->mu);
	rc = -ss__sys.pthread_create(&tid, &attr, thread_main, t);
	pthread_attr_destroy(&attr);
	if (rc < 0)
		goto out_unlink;
	return 0;

out_unlink:
	pthread_mutex_lock(&st->mu);
	unlink_request(st, r);
	st->count--;
	pthread_mutex_unlock(&st->mu);
out_free_rec:
	free(t);
	return ss_server_drop_request(s, r, rc, "start thread");
}

/* ------------------------------------------------------------------ */
/* Waiting and teardown                                                */
/* ------------------------------------------------------------------ */

/* Wait (mu held) until at most `self` threads run, or (s not NULL) the
 * server's planned cut is due.  Returns true when they ended. */
static bool wait_ended(ss_server *s, struct threading *st, size_t self)
{
	while (st->count > self) {
		if (!s)
			pthread_cond_wait(&st->ended, &st->mu);
		else if (!ss__cond_wait_cut(s, &st->ended, &st->mu))
			return st->count <= self;
	}
	return true;
}

/*
 * Wait for the running handlers until the server's planned cut (the end
 * of the close's grace period, or ss_server_cut; none: no limit), or not
 * at all when abort_now; then break their connections and wait for them
 * to return, which they do as their I/O fails.  A handler thread calling
 * this (against the rules) does not wait for, or abort, itself.
 */
static void wait_all(ss_server *s, struct threading *st, bool abort_now)
{
	bool self = current && state_of(current->server) == st;
	ss_request *mine = self ? current->request : NULL;
	double grace = 0;

	pthread_mutex_lock(&st->mu);
	if (abort_now || !wait_ended(s, st, self)) {
		if (!abort_now)
			ss__cut_deadline(s, &grace);
		abort_running(st, mine, grace);
		wait_ended(NULL, st, self);
	}
	pthread_mutex_unlock(&st->mu);
}

/* server_close: with block_on_close (and non-daemon threads) wait for
 * the handlers as wait_all says; then join what has ended. */
static void threading_server_close(ss_server *s, double grace)
{
	struct threading *st = state_of(s);

	if (s->block_on_close && !s->daemon_threads)
		wait_all(s, st, false);	/* grace: the server's plan */
	reap(st);
}

/* Allocate the state; the condition variable runs on the monotonic clock
 * so grace deadlines ignore wall-clock changes.  Returns 0 or a negative
 * errno (nothing to undo then). */
static int threading_init(ss_server *s)
{
	struct threading *st = calloc(1, sizeof *st);
	int err;

	if (!st)
		return -ENOMEM;
	err = ss__cond_init_monotonic(&st->ended);
	if (err)
		goto out_free;
	err = -pthread_mutex_init(&st->mu, NULL);
	if (err)
		goto out_cond;
	s->mixin_state = st;
	return 0;

out_cond:
	pthread_cond_destroy(&st->ended);
out_free:
	free(st);
	return err;
}

/* Free the state.  Threads (daemon ones, or any after a close that did
 * not wait) use the server until they return, so their connections are
 * broken and they are waited for first; then the joinable ones are
 * joined.  Must not be called from a handler thread. */
static void threading_destroy(ss_server *s)
{
	struct threading *st = state_of(s);

	if (!st)
		return;
	wait_all(s, st, true);
	reap(st);
	pthread_mutex_destroy(&st->mu);
	pthread_cond_destroy(&st->ended);
	free(st);
	s->mixin_state = NULL;
}

/* service_actions: join the threads that ended since the last turn. */
static void threading_service_actions(ss_server *s)
{
	reap(state_of(s));
}

/* Handler threads started and not yet ended. */
static size_t threading_active_count(ss_server *s)
{
	struct threading *st = state_of(s);
	size_t n;

	pthread_mutex_lock(&st->mu);
	n = st->count;
	pthread_mutex_unlock(&st->mu);
	return n;
}

const ss_mixin ss_threading_mixin = {
	.name = "threading",
	.init = threading_init,
	.process_request = threading_process_request,
	.service_actions = threading_service_actions,
	.server_close = threading_server_close,
	.destroy = threading_destroy,
	.active_count = threading_active_count,
};
