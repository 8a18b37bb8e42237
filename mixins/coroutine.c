/*
 * coroutine.c - the coroutine model (gevent for C): a coroutine per
 * request on the loop's own thread, through one scheduler of the
 * coroutine runtime (coroutine/) driven by the core loop: process_request
 * starts the coroutine, the loop's selector events and timers resume it.
 */
#include "coroutine.h"

#include <stdlib.h>

/* ------------------------------------------------------------------ */
/* The coroutine mixin: one scheduler on the core loop                 */
/* ------------------------------------------------------------------ */

static struct ss__coro_sched *sched_of(ss_server *s)
{
	return s->mixin_state;
}

static int coroutine_init(ss_server *s)
{
	struct ss__coro_sched *q = calloc(1, sizeof *q);

	if (!q)
		return -ENOMEM;
	ss__sched_init(q, s, NULL);
	s->mixin_state = q;
	return 0;
}

/* process_request (on the loop's thread): a coroutine for the request,
 * run until it first waits.  Waits go to the loop's selector. */
static int coroutine_process_request(ss_server *s, ss_request *r)
{
	struct ss__coro_sched *q = sched_of(s);

	if (q->count == 0 || !q->sel)
		q->sel = ss__srv(s)->sel;
	return ss__sched_spawn(q, r);
}

/* Every loop turn: resume the coroutines whose timers expired. */
static void coroutine_service_actions(ss_server *s)
{
	ss__sched_run_timers(sched_of(s));
}

/* The loop's wait is bounded by the next timer; due timers run first, so
 * a server driven by handle_request alone still runs them. */
static double coroutine_next_timeout(ss_server *s)
{
	struct ss__coro_sched *q = sched_of(s);

	ss__sched_run_timers(q);
	return ss__sched_next_timeout(q);
}

static void coroutine_dispatch(ss_server *s, const ss_selector_event *ev)
{
	ss__sched_dispatch(sched_of(s), ev);
}

/* server_close: the loop has stopped, so the coroutines are run here, on
 * the closing thread, for at most grace seconds (none without
 * block_on_close), then cut. */
static void coroutine_server_close(ss_server *s, double grace)
{
	struct ss__coro_sched *q = sched_of(s);
	double deadline = grace < 0 ? -1 : ss__now() + grace;

	if (!s->block_on_close)
		deadline = ss__now();
	if (q->count > 0)
		ss__sched_drain(q, deadline);
}

static void coroutine_destroy(ss_server *s)
{
	struct ss__coro_sched *q = sched_of(s);

	if (!q)
		return;
	if (q->count > 0)
		ss__sched_drain(q, ss__now());	/* never closed (a child) */
	ss__sched_destroy(q);
	free(q);
	s->mixin_state = NULL;
}

static size_t coroutine_active_count(ss_server *s)
{
	return ss__sched_count(sched_of(s));
}

const ss_mixin ss_coroutine_mixin = {
	.name = "coroutine",
	.init = coroutine_init,
	.process_request = coroutine_process_request,
	.service_actions = coroutine_service_actions,
	.server_close = coroutine_server_close,
	.destroy = coroutine_destroy,
	.active_count = coroutine_active_count,
	.dispatch = coroutine_dispatch,
	.next_timeout = coroutine_next_timeout,
};
