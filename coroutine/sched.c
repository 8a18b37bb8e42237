/*
 * sched.c - the coroutine scheduler the coroutine models run on: every
 * request in a coroutine with its own small stack on one thread; when its
 * I/O would block it yields to the loop, which resumes it when the
 * selector says the fd is ready or its timer expires.  mixins/coroutine.c
 * drives one scheduler from the core loop, threads_coroutine.c one per
 * worker thread, and prefork's workers each run the coroutine model.
 *
 * How a blocking-style handler yields: while a coroutine runs, the
 * thread-local ss__wait_hook points at coro_wait, so every library wait
 * (the plain transport's reads and writes, which then use MSG_DONTWAIT;
 * ss_sleep; a datagram reply) registers the fd on the loop's selector with
 * the coroutine as data, arms a timer for its timeout and switches to the
 * loop.  Between coroutines the hook is NULL, so the loop never yields.
 *
 * What this cannot help: a handler that blocks on something the loop does
 * not see (sleep(), a blocking library call, a lock held long, heavy
 * computation) stalls every request of its loop until it returns.
 *
 * The fd a coroutine waits on stays registered while the coroutine lives
 * (waiting on the same fd again costs no system call); an event that
 * comes while it waits for something else pauses it.  It is unregistered
 * when the handler has returned, before shutdown_request closes the fd.
 * Timers are a binary min-heap on the monotonic deadline.  Finished
 * coroutines leave their stacks to the next ones (up to SPARE_STACKS),
 * and a coroutine about to wait for input leaves its empty stream
 * buffers to the loop (ss__buffers), so idle connections hold none.
 */
#include "coroutine.h"

#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define SPARE_STACKS 64		/* finished stacks kept for reuse */
#define POLL_MS 1		/* retry period when an fd cannot be watched */
#define NO_TIMER SIZE_MAX

/* One coroutine: a request's handler on its own stack. */
struct ss__coro {
	struct ss__coro_ctx ctx;
	struct ss__coro_stack stack;
	struct ss__coro_sched *sched;
	ss_request *request;	/* NULL once freed */
	int fd;			/* registered on sched->sel, -1: none */
	int fd_events;		/* what it is registered for (0: paused) */
	int wait_fd;		/* the fd it waits on now, -1: none */
	bool waiting;		/* switched out in coro_wait */
	bool closing;		/* the handler returned; fd about to close */
	bool done;		/* ended: the loop frees it */
	int result;		/* why it was resumed: 0, -ETIMEDOUT */
	double deadline;	/* its timer (monotonic seconds) */
	size_t heap_pos;	/* index in sched->heap, NO_TIMER: none */
	struct ss__coro *next, *prev;	/* on sched->all */
	struct ss__coro *expired;	/* run_timers' batch */
};

/* The coroutine running on this thread, NULL on the loop. */
static __thread struct ss__coro *current;

/* ------------------------------------------------------------------ */
/* Timers: a min-heap on deadline                                      */
/* ------------------------------------------------------------------ */

static void heap_set(struct ss__coro_sched *q, size_t i, struct ss__coro *c)
{
	q->heap[i] = c;
	c->heap_pos = i;
}

static void heap_up(struct ss__coro_sched *q, size_t i)
{
	struct ss__coro *c = q->heap[i];

	while (i > 0 && q->heap[(i - 1) / 2]->deadline > c->deadline) {
		heap_set(q, i, q->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(q, i, c);
}

static void heap_down(struct ss__coro_sched *q, size_t i)
{
	struct ss__coro *c = q->heap[i];
	size_t k;

	while ((k = 2 * i + 1) < q->nheap) {
		if (k + 1 < q->nheap && q->heap[k + 1]->deadline < q->heap[k]->deadline)
			k++;
		if (q->heap[k]->deadline >= c->deadline)
			break;
		heap_set(q, i, q->heap[k]);
		i = k;
	}
	heap_set(q, i, c);
}

/* Arm c's timer.  0 or -ENOMEM. */
static int heap_push(struct ss__coro_sched *q, struct ss__coro *c, double deadline)
{
	if (q->nheap == q->capheap) {
		size_t n = q->capheap ? q->capheap * 2 : 64;
		struct ss__coro **h = realloc(q->heap, n * sizeof *h);

		if (!h)
			return -ENOMEM;
		q->heap = h;
		q->capheap = n;
	}
	c->deadline = deadline;
	heap_set(q, q->nheap++, c);
	heap_up(q, q->nheap - 1);
	return 0;
}

/* Disarm c's timer, if armed. */
static void heap_remove(struct ss__coro_sched *q, struct ss__coro *c)
{
	size_t i = c->heap_pos;
	struct ss__coro *last;

	if (i == NO_TIMER)
		return;
	c->heap_pos = NO_TIMER;
	last = q->heap[--q->nheap];
	if (i == q->nheap)
		return;
	heap_set(q, i, last);
	heap_up(q, i);
	heap_down(q, last->heap_pos);
}

/* ------------------------------------------------------------------ */
/* Watching fds                                                        */
/* ------------------------------------------------------------------ */

/* Forget c's fd on the selector (before it is closed). */
static void unwatch(struct ss__coro *c)
{
	if (c->fd < 0)
		return;
	ss_selector_unregister(c->sched->sel, c->fd);
	c->fd = -1;
	c->fd_events = 0;
}

/* Watch fd for poll() events on behalf of c: register it, or change what
 * it is watched for.  0, or a negative errno (-EEXIST: the fd belongs to
 * someone else on this selector, like a datagram server's socket). */
static int watch(struct ss__coro *c, int fd, short events)
{
	int want = events & POLLOUT ? SS_EVENT_WRITE : 0;
	int rc;

	if ((events & ~POLLOUT) || !want)
		want |= SS_EVENT_READ;
	if (c->fd == fd) {
		if (c->fd_events == want)
			return 0;
		rc = ss_selector_modify(c->sched->sel, fd, want, c);
	} else {
		unwatch(c);
		rc = ss_selector_register(c->sched->sel, fd, want, c);
		if (rc == 0)
			c->fd = fd;
	}
	if (rc == 0)
		c->fd_events = want;
	return rc;
}

/* ------------------------------------------------------------------ */
/* Switching                                                           */
/* ------------------------------------------------------------------ */

static int coro_wait(int fd, short events, int timeout_ms);

/* Free an ended coroutine; its stack goes to the spares. */
static void coro_free(struct ss__coro_sched *q, struct ss__coro *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		q->all = c->next;
	if (c->next)
		c->next->prev = c->prev;
	ss__coro_release(&c->ctx);
	if (q->nspare < SPARE_STACKS && c->stack.size == q->stack_size && q->spare)
		q->spare[q->nspare++] = c->stack;
	else
		ss__coro_stack_free(&c->stack);
	free(c);
	__atomic_sub_fetch(&q->count, 1, __ATOMIC_RELEASE);
}

/* Run c (on the loop's side) until it waits or ends; result is what its
 * wait returns.  The wait hook is set only while it runs. */
static void resume(struct ss__coro *c, int result)
{
	struct ss__coro_sched *q = c->sched;

	c->result = result;
	current = c;
	ss__wait_hook = coro_wait;
	ss__buffers = &q->buffers;
	ss__coro_switch(&q->loop, &c->ctx);
	ss__buffers = NULL;
	ss__wait_hook = NULL;
	current = NULL;
	if (c->done)
		coro_free(q, c);
}

/* A wait cut short by server_close after the grace period. */
static int cut(struct ss__coro *c)
{
	if (!c->request)
		return -ECANCELED;
	return ss__request_cut_error(c->request, c->sched->grace);
}

/*
 * ss__wait_hook while a coroutine runs: wait for events on fd (fd < 0:
 * only sleep) for at most timeout_ms (-1: no limit) by yielding to the
 * loop.  Returns 0 when the fd is ready, -ETIMEDOUT, -ECANCELED once the
 * server cuts its requests, or -ENOMEM.  An fd the selector will not take
 * (a datagram server's socket, watched by the loop itself) is retried
 * every POLL_MS: then 0 just means "try again".
 */
static int coro_wait(int fd, short events, int timeout_ms)
{
	struct ss__coro *c = current;
	struct ss__coro_sched *q = c->sched;
	bool polling = false;
	int rc;

	if (q->aborting) {
		fd = -1;	/* one more turn for the others, then fail */
		timeout_ms = 0;
	}
	if (fd >= 0 && watch(c, fd, events) < 0) {
		polling = true;
		fd = -1;
		if (timeout_ms < 0 || timeout_ms > POLL_MS)
			timeout_ms = POLL_MS;
	}
	if (timeout_ms >= 0 &&
	    (rc = heap_push(q, c, ss__now() + timeout_ms / 1000.0)) < 0)
		return rc;
	c->wait_fd = fd;
	c->waiting = true;
	ss__coro_switch(&c->ctx, &q->loop);
	c->waiting = false;
	c->wait_fd = -1;
	heap_remove(q, c);
	if (c->closing)
		unwatch(c);	/* its fd is closed next */
	if (q->aborting)
		return cut(c);
	return polling ? 0 : c->result;
}

/* The body of every coroutine: run the request, then end it as
 * threading's handler threads do (unwatched before its fd closes). */
static void coro_main(void *arg)
{
	struct ss__coro *c = arg;
	struct ss__coro_sched *q = c->sched;
	ss_server *s = q->server;
	ss_request *r = c->request;

	ss__request_finish(s, r);
	c->closing = true;
	unwatch(c);
	ss_server_shutdown_request(s, r);
	ss_request_free(r);
	c->request = NULL;
	c->done = true;
	ss__coro_exit(&c->ctx, &q->loop);
}

/* ------------------------------------------------------------------ */
/* The scheduler                                                       */
/* ------------------------------------------------------------------ */

void ss__sched_init(struct ss__coro_sched *q, ss_server *s, ss_selector *sel)
{
	q->server = s;
	q->sel = sel;
}

/* The stack size the option asks for (0: the default), times the
 * sanitizer factor, in whole pages. */
static size_t wanted_stack(const ss_server *s)
{
	size_t size = s->coroutine_stack_size ? s->coroutine_stack_size : SS_COROUTINE_STACK;
	long page = sysconf(_SC_PAGESIZE);
	size_t p = page > 0 ? (size_t)page : 4096u;

	if (size > SIZE_MAX / 4 / SS__STACK_FACTOR)
		size = SIZE_MAX / 4 / SS__STACK_FACTOR;
	size *= SS__STACK_FACTOR;
	return (size + p - 1) / p * p;
}

/* A stack for a new coroutine: a spare one, or a new mapping (spares of
 * another size are dropped: the option changed).  0 or a negative
 * errno. */
static int get_stack(struct ss__coro_sched *q, struct ss__coro_stack *st)
{
	size_t size = wanted_stack(q->server);

	if (size != q->stack_size) {
		while (q->nspare)
			ss__coro_stack_free(&q->spare[--q->nspare]);
		q->stack_size = size;
	}
	if (q->nspare) {
		*st = q->spare[--q->nspare];
		return 0;
	}
	if (!q->spare)
		q->spare = calloc(SPARE_STACKS, sizeof *q->spare);
	return ss__coro_stack_alloc(st, size);
}

int ss__sched_spawn(struct ss__coro_sched *q, ss_request *r)
{
	struct ss__coro *c;
	int rc;

	if (!q->sel)
		return ss_server_drop_request(q->server, r, -EINVAL, "start coroutine");
	c = calloc(1, sizeof *c);
	if (!c)
		return ss_server_drop_request(q->server, r, -ENOMEM, "start coroutine");
	rc = get_stack(q, &c->stack);
	if (rc < 0)
		goto out_free;
	c->sched = q;
	c->request = r;
	c->fd = c->wait_fd = -1;
	c->heap_pos = NO_TIMER;
	rc = ss__coro_make(&c->ctx, &q->loop, &c->stack, coro_main, c);
	if (rc < 0)
		goto out_stack;
	c->next = q->all;
	if (q->all)
		q->all->prev = c;
	q->all = c;
	__atomic_add_fetch(&q->count, 1, __ATOMIC_RELEASE);
	resume(c, 0);
	return 0;

out_stack:
	ss__coro_stack_free(&c->stack);
out_free:
	free(c);
	return ss_server_drop_request(q->server, r, rc, "start coroutine");
}

void ss__sched_dispatch(struct ss__coro_sched *q, const ss_selector_event *ev)
{
	struct ss__coro *c = ev->data;

	if (c->waiting && c->wait_fd == ev->fd) {
		resume(c, 0);
	} else if (c->fd == ev->fd && c->fd_events) {
		/* ready while it waits for something else: pause it */
		ss_selector_modify(q->sel, c->fd, 0, c);
		c->fd_events = 0;
	}
}

double ss__sched_next_timeout(struct ss__coro_sched *q)
{
	double left;

	if (q->nheap == 0)
		return -1;
	left = q->heap[0]->deadline - ss__now();
	return left < 0 ? 0 : left;
}

void ss__sched_run_timers(struct ss__coro_sched *q)
{
	struct ss__coro *due = NULL, **tail = &due, *c, *next;
	double now;

	if (q->nheap == 0)
		return;
	now = ss__now();
	while (q->nheap && q->heap[0]->deadline <= now) {
		c = q->heap[0];
		heap_remove(q, c);
		c->expired = NULL;
		*tail = c;
		tail = &c->expired;
	}
	for (c = due; c; c = next) {
		next = c->expired;	/* c may be freed; the others not */
		resume(c, -ETIMEDOUT);
	}
}

size_t ss__sched_count(struct ss__coro_sched *q)
{
	return __atomic_load_n(&q->count, __ATOMIC_ACQUIRE);
}

/* Make every waiting coroutine due now (its wait then fails: aborting). */
static void wake_all(struct ss__coro_sched *q)
{
	struct ss__coro *c;

	for (c = q->all; c; c = c->next) {
		if (!c->waiting)
			continue;
		heap_remove(q, c);
		if (heap_push(q, c, 0) < 0)
			c->wait_fd = -2;	/* no memory: resumed below */
	}
	for (c = q->all; c; c = c->next)
		if (c->waiting && c->wait_fd == -2) {
			resume(c, -ECANCELED);
			return wake_all(q);	/* the list may have changed */
		}
}

/* One turn of the drain loop: wait for events until the next timer or
 * the deadline (SS__CUT_POLL at most while a deadline may still come:
 * ss_server_cut from a signal handler), resume who is ready, then who is
 * due. */
static void drain_turn(struct ss__coro_sched *q, double deadline)
{
	ss_server *s = q->server;
	ss_selector_event ev[64];
	double wait = ss__sched_next_timeout(q), left;
	int i, n;

	left = deadline >= 0 ? deadline - ss__now() : SS__CUT_POLL;
	if (left > SS__CUT_POLL)
		left = SS__CUT_POLL;
	if (left < 0)
		left = 0;
	if (wait < 0 || left < wait)
		wait = left;
	n = ss_selector_select(q->sel, ev, 64, wait);
	if (n < 0)
		wake_all(q);	/* a broken selector: let the waits retry */
	for (i = 0; i < n; i++) {
		if (ev[i].fd == ss__srv(s)->wake_fd[0]) {
			/* closing: a stop request means nothing */
			ss__wakeup_drain(ss__srv(s)->wake_fd[0]);
		} else if (ev[i].fd != s->fd) {
			ss__sched_dispatch(q, &ev[i]);
		}
	}
	ss__sched_run_timers(q);
}

/* The earlier of the drain's own deadline and the server's planned cut
 * (< 0: none), with the grace period it ends in *grace. */
static double drain_deadline(struct ss__coro_sched *q, double deadline,
			     double start, double *grace)
{
	double plan = ss__cut_deadline(q->server, grace);

	if (plan >= 0 && (deadline < 0 || plan < deadline))
		return plan;
	*grace = deadline > start ? deadline - start : 0;
	return deadline;
}

void ss__sched_drain(struct ss__coro_sched *q, double deadline)
{
	struct ss__coro *c;
	double start = ss__now(), grace = 0, due;

	while (q->count > 0) {
		due = drain_deadline(q, deadline, start, &grace);
		if (due >= 0 && ss__now() >= due)
			break;
		drain_turn(q, due);
	}
	if (q->count == 0)
		return;
	q->aborting = true;
	q->grace = grace;
	for (c = q->all; c; c = c->next)
		if (!c->closing && c->request)
			ss__request_abort(c->request, q->grace);
	wake_all(q);
	while (q->count > 0)
		drain_turn(q, -1);
	q->aborting = false;
}

void ss__sched_destroy(struct ss__coro_sched *q)
{
	while (q->nspare)
		ss__coro_stack_free(&q->spare[--q->nspare]);
	free(q->spare);
	ss__buffers_clear(&q->buffers);
	free(q->heap);
	q->spare = NULL;
	q->heap = NULL;
	q->nheap = q->capheap = 0;
}
