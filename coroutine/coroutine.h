/*
 * coroutine.h - the coroutine runtime's scheduler, which the coroutine
 * models share (mixins include it; nothing below them does): one per
 * thread that runs coroutines, on that thread's selector.  coroutine.c drives one from the core loop;
 * threads_coroutine.c runs one per worker thread with a loop of its own.
 */
#ifndef SS_COROUTINE_H
#define SS_COROUTINE_H

#include "ss_internal.h"
#include <socketserver/selector.h>
#include "switch.h"

struct ss__coro;

/* A scheduler: the coroutines of one loop, their timers and spare
 * stacks.  Used by one thread at a time. */
struct ss__coro_sched {
	ss_server *server;
	ss_selector *sel;		/* where coroutines wait on fds */
	struct ss__coro_ctx loop;	/* the loop, while a coroutine runs */
	struct ss__coro *all;		/* every coroutine not yet freed */
	size_t count;			/* their number (atomic: read by
					   active_count from any thread) */
	struct ss__coro **heap;		/* timers: a min-heap on deadline */
	size_t nheap, capheap;
	struct ss__coro_stack *spare;	/* finished coroutines' stacks */
	size_t nspare;
	size_t stack_size;		/* of the spare stacks */
	struct ss__buffers buffers;	/* spare stream buffers */
	bool aborting;			/* close: waits fail at once */
	double grace;			/* the grace they had, for messages */
};

/* Start a scheduler for server s on sel (sel may be set later). */
void ss__sched_init(struct ss__coro_sched *q, ss_server *s, ss_selector *sel);

/* process_request: run request r in a new coroutine until it first
 * waits.  The request is owned by the coroutine (or, if none can be
 * made, reported, shut down and freed here).  0 or a negative errno. */
int ss__sched_spawn(struct ss__coro_sched *q, ss_request *r);

/* An event on the selector whose data is a coroutine of q: resume it. */
void ss__sched_dispatch(struct ss__coro_sched *q, const ss_selector_event *ev);

/* Seconds until the earliest timer (0 if one is due), < 0 if none. */
double ss__sched_next_timeout(struct ss__coro_sched *q);

/* Resume the coroutines whose timers expired (their wait returns
 * -ETIMEDOUT). */
void ss__sched_run_timers(struct ss__coro_sched *q);

/*
 * Run the coroutines on q->sel until none is left or the monotonic
 * deadline (< 0: none) passes; then break the remaining connections
 * (ss__request_abort), make every wait fail, and run until all have
 * ended.  Events on fds that are not coroutines' are ignored (a byte on
 * the server's wakeup pipe is consumed).
 */
void ss__sched_drain(struct ss__coro_sched *q, double deadline);

/* Coroutines not yet ended (any thread may ask). */
size_t ss__sched_count(struct ss__coro_sched *q);

/* Free the spare stacks and buffers and the timer heap; no coroutine may
 * be left. */
void ss__sched_destroy(struct ss__coro_sched *q);

#endif /* SS_COROUTINE_H */
