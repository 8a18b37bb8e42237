/*
 * prefork.c - the prefork model (Apache prefork, Perl Net::Server::
 * PreFork) and its engine, shared by every prefork composition: the
 * parent forks `workers` processes (default: 4 per CPU it may run on
 * when the workers block in handlers, 1 per CPU for coroutine ones) that
 * each run the ordinary loop with an inner model (sync for "prefork",
 * coroutines for "prefork+coroutine") and accept on the inherited
 * listening socket themselves.  The parent only supervises: it respawns a
 * worker that dies (a crashing handler takes down only its worker),
 * replaces one that retired after max_requests, keeps min_spare..max_spare
 * idle workers if asked, and on stop tells every worker to finish and
 * reaps them all.
 *
 * Thundering herd: every worker waits on the same listener through its own
 * selector, registered with SS_EVENT_EXCLUSIVE (EPOLLEXCLUSIVE), so a new
 * connection wakes one idle worker, not all of them; with poll or select
 * backends it wakes each, one accept4() wins and the others get EAGAIN,
 * which the core loop takes as "nothing there".  This was chosen over
 * one SO_REUSEPORT socket per worker, which resets the connections
 * queued on a socket whose worker dies or retires (every max_requests
 * recycle would drop clients) and does not exist for unix sockets, and
 * over an accept lock, which serialises the accepts themselves.
 *
 * Parent and workers share a scoreboard (MAP_SHARED | MAP_ANONYMOUS): the
 * parent's stop plan (server->plan points into it, so the cut a close
 * plans, with close_grace or the grace given to the call, or at once with
 * ss_server_cut, reaches every worker) and per slot the worker's requests
 * in flight and a "stop" mark the parent sets before it pokes the worker.
 * Each worker gets a wakeup socket pair made before the fork; the parent
 * keeps one end and pokes it (MSG_NOSIGNAL: a worker that already exited
 * costs an EPIPE, never a SIGPIPE) to stop the worker or to make it read
 * the plan again.  The parent waits in poll() on the workers' pidfds
 * (waitpid WNOHANG every 10 ms without them) and its own wakeup channel,
 * reaps only its workers' pids, never waitpid(-1), and SIGKILLs a worker
 * only ABORT_WAIT seconds after the planned cut, so workers cut, run
 * finish and report first.
 *
 * A handler that calls ss_server_shutdown stops the whole server: in a
 * worker the call also pokes the parent's wakeup channel (forward_fd).
 * A worker told to stop lets go of its copy of the listener at once (the
 * core does it when the stop arrives, even during an inline request), so
 * new clients are refused.  Signals: SIGTERM stops one worker only, the
 * parent's death makes it cut and exit (ss__child_signals).
 *
 * The parent's state is server->mixin_state; in a worker the inner
 * model's state replaces it, and the worker's own bookkeeping lives in
 * process-local statics (a worker is a process with one server).
 */
#include "ss_internal.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BLOCKING_PER_CPU 4	/* default sync workers per CPU */
#define FALLBACK_PAUSE_MS 10	/* waitpid polling step without pidfds */
#define RESPAWN_DELAY 0.1	/* seconds before replacing a worker that
				   failed within MIN_LIFE of its start */
#define MIN_LIFE 1.0
#define ABORT_WAIT 2.0		/* seconds workers get after the cut to
				   report it and finish, before SIGKILL */

/* A worker as the scoreboard shows it (shared memory, atomics only). */
struct board_slot {
	int active;		/* requests in flight in this worker */
	int stop;		/* the parent asked it to stop */
};

/* The scoreboard: the parent's stop plan (server->plan points here, so
 * the cut its close plans reaches the workers), then a slot per worker. */
struct board {
	struct ss__stop_plan plan;
	struct board_slot slot[];
};

/* A worker as the parent sees it. */
struct slot {
	pid_t pid;		/* 0: empty */
	int pidfd;		/* -1 when pidfd_open failed */
	int stop_fd;		/* write end of its wakeup pipe */
	bool stopping;		/* told to stop */
	double started;		/* monotonic */
	double not_before;	/* no respawn before this time */
};

/* The parent's state (server->mixin_state). */
struct prefork {
	const ss_mixin *inner;	/* the model each worker runs */
	pthread_mutex_t mu;	/* guards slots[].pid for active_count */
	struct slot *slots;
	struct board *map;	/* shared: plan and slots */
	struct board_slot *board;	/* map->slot */
	struct pollfd *pfd;	/* scratch: nslots + 1 */
	int nslots;
	bool failing;		/* a fork failed: reported once per episode */
};

/* The worker's own bookkeeping (process-local, set after the fork). */
static struct {
	const ss_mixin *inner;
	ss_mixin mixin;		/* *inner with counting process_request */
	struct board_slot *slot;
	ss_server *server;
	int served;
	bool retiring;		/* max_requests reached */
} w;

static struct prefork *state_of(ss_server *s)
{
	return s->mixin_state;
}

static int board_get(int *field)
{
	return __atomic_load_n(field, __ATOMIC_ACQUIRE);
}

static void board_set(int *field, int v)
{
	__atomic_store_n(field, v, __ATOMIC_RELEASE);
}

/* ------------------------------------------------------------------ */
/* The worker process                                                  */
/* ------------------------------------------------------------------ */

/* Show this worker's requests in flight on the scoreboard. */
static void publish(ss_server *s, int extra)
{
	board_set(&w.slot->active, (int)ss__mixin_active_count(s, w.inner) + extra);
}

/* process_request in a worker: the inner model's, counted; after
 * max_requests the worker's loop stops and the worker retires.  A stop
 * the parent marked while the request ran is taken at once: the loop may
 * be about to take another connection from the same wake-up, before it
 * reads the stop byte. */
static int worker_process_request(ss_server *s, ss_request *r)
{
	int rc;

	publish(s, 1);
	rc = ss__mixin_process_request(s, w.inner, r);
	publish(s, 0);
	if (s->max_requests > 0 && ++w.served >= s->max_requests && !w.retiring) {
		w.retiring = true;
		ss__stop_loop(s);
	} else if (board_get(&w.slot->stop)) {
		ss__stop_loop(s);
	}
	return rc;
}

/* service_actions in a worker: the inner model's, then the scoreboard. */
static void worker_service_actions(ss_server *s)
{
	ss__mixin_service_actions(s, w.inner);
	publish(s, 0);
}

/* SIGTERM to this worker: it stops (stops accepting, gives its requests
 * their grace, exits), and only it: the parent starts another.
 * Async-signal-safe. */
static void worker_end(void)
{
	ss__stop_loop(w.server);
}

/* The server process died: nobody will close this worker, so it stops
 * accepting and cuts its requests at once.  Async-signal-safe. */
static void worker_orphaned(void)
{
	ss_server_cut(w.server);
}

/* Forget what belongs to the parent: the other workers' pidfds and pipe
 * ends, and the parent's scratch; start the serve/close lock afresh (a
 * thread of the parent may have held it at the fork). */
static void drop_parent_state(ss_server *s, struct prefork *st)
{
	struct ss__lock *l = ss__lock_of(s);
	int i;

	for (i = 0; i < st->nslots; i++) {
		if (st->slots[i].pid == 0)
			continue;
		ss__close(st->slots[i].pidfd);
		ss__close(st->slots[i].stop_fd);
	}
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
	ss__srv(s)->serving = false;
}

/*
 * The worker: its own wakeup pipe (wake, made by the parent) and
 * selector, the inner model, the ordinary loop on the inherited listener;
 * then close within close_grace and _exit (never exit(): the parent's
 * atexit handlers and stdio buffers are not ours).  Exits 0, or 1 if it
 * could not start.
 */
static void __attribute__((noreturn))
worker_main(ss_server *s, struct prefork *st, int i, const int wake[2],
	    double poll_interval, pid_t parent)
{
	int rc;

	w.inner = st->inner;
	w.slot = &st->board[i];
	w.server = s;
	ss__srv(s)->forward_fd = fcntl(ss__srv(s)->wake_fd[1], F_DUPFD_CLOEXEC, 0);
	drop_parent_state(s, st);
	if ((rc = ss__worker_after_fork(s, wake)) < 0)
		goto out_fail;
	/* the parent's plan is read, this worker's own is written */
	ss__srv(s)->parent_plan = &st->map->plan;
	ss__plan_reset(&ss__srv(s)->stop_plan);
	ss__srv(s)->plan = &ss__srv(s)->stop_plan;
	ss__child_signals(parent, worker_end, worker_orphaned);
	w.mixin = *w.inner;
	w.mixin.process_request = worker_process_request;
	w.mixin.service_actions = worker_service_actions;
	w.mixin.serve_forever = NULL;	/* the ordinary loop */
	s->mixin = &w.mixin;
	s->mixin_state = NULL;
	if ((rc = ss__mixin_init(s, w.inner)) < 0) {
		ss__set_errno_msg(s->errmsg, rc, "prefork worker: %s model", w.inner->name);
		goto out_fail;
	}
	rc = ss__serve_loop(s, poll_interval);
	ss_server_close_within(s, s->close_grace);
	publish(s, 0);
	ss__mixin_destroy(s, w.inner);
	_exit(0);

out_fail:
	s->ops->handle_error(s, NULL, rc);
	_exit(1);
}

/* ------------------------------------------------------------------ */
/* Starting and stopping workers (the parent)                          */
/* ------------------------------------------------------------------ */

/* Fork the worker for slot i.  Returns 0, or a negative errno (reported
 * once per episode of failures). */
static int spawn(ss_server *s, struct prefork *st, int i, double poll_interval)
{
	struct slot *sl = &st->slots[i];
	int wake[2], rc;
	pid_t pid, parent = getpid();

	if ((rc = ss__wakeup_new(wake)) < 0) {
		ss__set_errno_msg(s->errmsg, rc, "prefork: socketpair");
		goto out_report;
	}
	board_set(&st->board[i].active, 0);
	board_set(&st->board[i].stop, 0);
	pid = ss__fork_child();
	if (pid == 0)
		worker_main(s, st, i, wake, poll_interval, parent);	/* no return */
	ss__close(wake[0]);
	if (pid < 0) {
		rc = ss__set_errno_msg(s->errmsg, -errno, "prefork: fork worker");
		ss__close(wake[1]);
		goto out_report;
	}
	pthread_mutex_lock(&st->mu);
	*sl = (struct slot){ .pid = pid, .pidfd = pidfd_open(pid, 0), .stop_fd = wake[1],
			     .started = ss__now() };
	pthread_mutex_unlock(&st->mu);
	st->failing = false;
	return 0;

out_report:
	if (!st->failing)
		s->ops->handle_error(s, NULL, rc);
	st->failing = true;
	sl->not_before = ss__now() + RESPAWN_DELAY;
	return rc;
}

/* Tell worker i to finish its requests and exit. */
static void tell_stop(struct prefork *st, int i)
{
	struct slot *sl = &st->slots[i];

	if (sl->pid == 0 || sl->stopping)
		return;
	sl->stopping = true;
	board_set(&st->board[i].stop, 1);
	ss__wakeup_poke(sl->stop_fd);
}

/* Report a worker that did not end well: killed by a signal (a crashing
 * handler) or exiting non-zero, while not told to stop. */
static void report_death(ss_server *s, pid_t pid, int status)
{
	char sig[64] = "";

	if (WIFSIGNALED(status)) {
		snprintf(sig, sizeof sig, "%s", strsignal(WTERMSIG(status)));
		snprintf(s->errmsg, sizeof s->errmsg,
			 "prefork worker %d killed by signal %d (%s); starting another",
			 (int)pid, WTERMSIG(status), sig);
	} else {
		snprintf(s->errmsg, sizeof s->errmsg,
			 "prefork worker %d exited with status %d; starting another",
			 (int)pid, WEXITSTATUS(status));
	}
	s->ops->handle_error(s, NULL, -ECHILD);
}

/* Forget slot i's worker (reaped): close its descriptors. */
static void clear_slot(struct prefork *st, int i, bool failed)
{
	struct slot *sl = &st->slots[i];
	double lived = ss__now() - sl->started;

	ss__close(sl->pidfd);
	ss__close(sl->stop_fd);
	pthread_mutex_lock(&st->mu);
	*sl = (struct slot){ .pid = 0, .pidfd = -1, .stop_fd = -1 };
	pthread_mutex_unlock(&st->mu);
	board_set(&st->board[i].active, 0);
	if (failed && lived < MIN_LIFE)
		sl->not_before = ss__now() + RESPAWN_DELAY;	/* no fork storm */
}

/* Reap every worker that ended, without blocking (by pid, EINTR retried;
 * ECHILD: someone reaped it already).  Reports the unexpected deaths when
 * report is true.  Returns the workers left. */
static int reap_ended(ss_server *s, struct prefork *st, bool report)
{
	int i, status, left = 0;
	bool failed;
	pid_t rc;

	for (i = 0; i < st->nslots; i++) {
		if (st->slots[i].pid == 0)
			continue;
		status = 0;
		do
			rc = waitpid(st->slots[i].pid, &status, WNOHANG);
		while (rc < 0 && errno == EINTR);
		if (rc == 0) {
			left++;
			continue;
		}
		failed = rc > 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
		if (failed && report && !st->slots[i].stopping)
			report_death(s, st->slots[i].pid, status);
		clear_slot(st, i, failed);
	}
	return left;
}

/* Sleep until a worker may have ended, the wakeup pipe has a byte (then
 * returns true; watched only when wake is true) or timeout_ms (-1:
 * forever) passes. */
static bool wait_event(ss_server *s, struct prefork *st, bool wake, int timeout_ms)
{
	nfds_t n = 0;
	int i, live = 0;

	st->pfd[n++] = (struct pollfd){ .fd = wake ? ss__srv(s)->wake_fd[0] : -1, .events = POLLIN };
	for (i = 0; i < st->nslots; i++) {
		if (st->slots[i].pid == 0)
			continue;
		live++;
		if (st->slots[i].pidfd >= 0)
			st->pfd[n++] = (struct pollfd){ .fd = st->slots[i].pidfd,
							.events = POLLIN };
	}
	if (n - 1 < (nfds_t)live && (timeout_ms < 0 || timeout_ms > FALLBACK_PAUSE_MS))
		timeout_ms = FALLBACK_PAUSE_MS;
	if (poll(st->pfd, n, timeout_ms) < 0 && errno != EINTR)
		poll(NULL, 0, FALLBACK_PAUSE_MS);	/* ENOMEM: don't spin */
	return (st->pfd[0].revents & POLLIN) != 0;
}

/* Wake every live worker, told to stop or not, so it reads the stop plan
 * again (a worker running a request inline waits on its wakeup channel). */
static void poke_all(struct prefork *st)
{
	int i;

	for (i = 0; i < st->nslots; i++)
		if (st->slots[i].pid)
			ss__wakeup_poke(st->slots[i].stop_fd);
}

/*
 * Stop every worker and wait for them: the workers cut their requests
 * themselves when the server's planned cut is due (they read the plan in
 * shared memory; none planned: no limit) and get ABORT_WAIT seconds more
 * to report the cut and finish; then (or at once when `now`) SIGKILL the
 * ones left (ours only: by pidfd when there is one, so a recycled pid is
 * never hit) and reap them all.  A cut planned meanwhile (ss_server_cut
 * from a signal handler pokes the wakeup channel) is passed on at once.
 */
static void stop_all(ss_server *s, struct prefork *st, bool now)
{
	double cut, kill_at;
	int i;

	for (i = 0; i < st->nslots; i++)
		tell_stop(st, i);
	poke_all(st);
	while (!now && reap_ended(s, st, false) > 0) {
		cut = ss__cut_deadline(s, NULL);
		kill_at = cut < 0 ? -1 : cut + ABORT_WAIT;
		if (kill_at >= 0 && ss__remaining_ms(kill_at) == 0)
			break;
		if (wait_event(s, st, true, ss__remaining_ms(kill_at))) {
			ss__wakeup_drain(ss__srv(s)->wake_fd[0]);
			poke_all(st);
		}
	}
	for (i = 0; i < st->nslots; i++) {
		if (st->slots[i].pid == 0)
			continue;
		if (st->slots[i].pidfd < 0 ||
		    pidfd_send_signal(st->slots[i].pidfd, SIGKILL, NULL, 0) < 0)
			kill(st->slots[i].pid, SIGKILL);
		while (waitpid(st->slots[i].pid, NULL, 0) < 0 && errno == EINTR)
			;
		clear_slot(st, i, false);
	}
}

/* ------------------------------------------------------------------ */
/* The parent's loop                                                   */
/* ------------------------------------------------------------------ */

/*
 * The default worker count: a worker that runs handlers one at a time
 * (sync) sits in a blocking read for every slow client, so it gets
 * BLOCKING_PER_CPU of them per CPU the process may run on (ss__cpus), as
 * Apache starts more processes than cores; a worker full of coroutines
 * keeps its core busy alone, so those get one per CPU.
 */
static int default_workers(const struct prefork *st)
{
	int ncpu = ss__cpus();

	return st->inner == &ss_sync_mixin ? ncpu * BLOCKING_PER_CPU : ncpu;
}

/* Bytes of a scoreboard for n workers. */
static size_t board_size(int n)
{
	return sizeof(struct board) + (size_t)n * sizeof(struct board_slot);
}

/* Give back the scoreboard; the server's plan moves back into it. */
static void unmap_board(ss_server *s, struct prefork *st)
{
	if (!st->map)
		return;
	ss__plan_move(s, &ss__srv(s)->stop_plan);
	munmap(st->map, board_size(st->nslots));
	st->map = NULL;
	st->board = NULL;
}

/* Size the slots and the scoreboard for the worker count asked for (0:
 * the default).  Returns 0 or a negative errno with s->errmsg. */
static int make_slots(ss_server *s, struct prefork *st)
{
	int n = s->workers > 0 ? s->workers : default_workers(st), i, rc = 0;
	void *b;

	if (st->slots && st->nslots == n)
		return 0;
	pthread_mutex_lock(&st->mu);	/* active_count reads the slots */
	unmap_board(s, st);
	free(st->slots);
	free(st->pfd);
	st->slots = NULL;
	st->board = NULL;
	st->pfd = NULL;
	st->nslots = 0;
	b = mmap(NULL, board_size(n), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (b == MAP_FAILED) {
		rc = ss__set_errno_msg(s->errmsg, -errno, "prefork: scoreboard");
		goto out_unlock;
	}
	st->map = b;
	st->board = st->map->slot;
	ss__plan_move(s, &st->map->plan);	/* to shared memory */
	st->nslots = n;
	st->slots = calloc((size_t)n, sizeof *st->slots);
	st->pfd = calloc((size_t)n + 1, sizeof *st->pfd);
	if (!st->slots || !st->pfd) {
		rc = ss__set_errno_msg(s->errmsg, -ENOMEM, "prefork: %d workers", n);
		goto out_unlock;
	}
	for (i = 0; i < n; i++)
		st->slots[i].pidfd = st->slots[i].stop_fd = -1;
out_unlock:
	pthread_mutex_unlock(&st->mu);
	return rc;
}

/* Idle workers (running, not told to stop, nothing in flight). */
static int count_idle(struct prefork *st, int *live)
{
	int i, idle = 0;

	*live = 0;
	for (i = 0; i < st->nslots; i++) {
		if (st->slots[i].pid == 0 || st->slots[i].stopping)
			continue;
		(*live)++;
		idle += board_get(&st->board[i].active) == 0;
	}
	return idle;
}

/*
 * Bring the pool to the size wanted: a fixed pool fills every empty slot;
 * with min_spare > 0, workers are started while fewer than min_spare are
 * idle (up to nslots) and one idle worker is stopped per turn while more
 * than max_spare (at least min_spare + 1) are idle.  A slot whose worker
 * failed young waits RESPAWN_DELAY.  Returns ms until a delayed respawn
 * is due, or -1.
 */
static int maintain(ss_server *s, struct prefork *st, double poll_interval)
{
	int i, live, idle, want, max_spare, due = -1, ms;
	double now = ss__now();

	idle = count_idle(st, &live);
	want = s->min_spare > 0 ? s->min_spare - idle : st->nslots;
	max_spare = s->max_spare > s->min_spare ? s->max_spare : s->min_spare + 1;
	for (i = 0; i < st->nslots && want > 0; i++) {
		if (st->slots[i].pid != 0)
			continue;
		if (st->slots[i].not_before > now) {
			ms = ss__remaining_ms(st->slots[i].not_before);
			due = due < 0 || ms < due ? ms : due;
			continue;
		}
		if (spawn(s, st, i, poll_interval) < 0)
			return ss__timeout_ms(RESPAWN_DELAY);
		want--;
	}
	if (s->min_spare > 0 && idle > max_spare)
		for (i = 0; i < st->nslots; i++)
			if (st->slots[i].pid && !st->slots[i].stopping &&
			    board_get(&st->board[i].active) == 0) {
				tell_stop(st, i);
				break;
			}
	return due;
}

/*
 * serve_forever in the parent: start the workers and supervise them until
 * ss_server_shutdown (from any thread, a signal handler, or a handler in
 * a worker); then tell every worker to stop and return without waiting
 * for them: server_close waits, within its grace period.  Returns 0, or
 * a negative errno if the pool could not be set up.
 */
static int prefork_serve_forever(ss_server *s, double poll_interval)
{
	struct prefork *st = state_of(s);
	int rc, interval = ss__timeout_ms(poll_interval), due, ms;

	rc = ss__enter_serving(s, false);
	if (rc < 0)
		return rc;
	rc = ss__stop_pending(s) ? 0 : make_slots(s, st);
	while (rc == 0 && !ss__stop_pending(s)) {
		reap_ended(s, st, true);
		due = maintain(s, st, poll_interval);
		s->ops->service_actions(s);
		ms = due >= 0 && (interval < 0 || due < interval) ? due : interval;
		if (wait_event(s, st, true, ms))
			__atomic_store_n(&ss__srv(s)->stop_requested, 1, __ATOMIC_RELEASE);
	}
	if (st->slots)
		for (int i = 0; i < st->nslots; i++)
			tell_stop(st, i);
	reap_ended(s, st, false);
	ss__leave_serving(s);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The mixin's other slots (the parent)                                */
/* ------------------------------------------------------------------ */

/* Reap the workers that ended (handle_request's turns). */
static void prefork_service_actions(ss_server *s)
{
	struct prefork *st = state_of(s);

	if (st->slots)
		reap_ended(s, st, true);
}

/* server_close: every worker is told to stop (serve_forever did, unless
 * it never ran) and waited for at most grace seconds (< 0: no limit);
 * those left are killed; all are reaped.  Without block_on_close they
 * get no time. */
static void prefork_server_close(ss_server *s, double grace)
{
	struct prefork *st = state_of(s);

	if (!st->slots)
		return;
	if (!s->block_on_close)
		ss__plan_cut_in(s, 0);
	stop_all(s, st, false);
}

/* Record the inner model and allocate the (empty) state; the workers
 * start with serve_forever, when the options are final.  Returns 0 or a
 * negative errno. */
static int engine_init(ss_server *s, const ss_mixin *inner)
{
	struct prefork *st = calloc(1, sizeof *st);
	int err;

	if (!st)
		return -ENOMEM;
	err = pthread_mutex_init(&st->mu, NULL);
	if (err) {
		free(st);
		return -err;
	}
	st->inner = inner;
	s->mixin_state = st;
	return 0;
}

/* Free the state; a worker still there (only if close never ran) is
 * killed and reaped first. */
static void prefork_destroy(ss_server *s)
{
	struct prefork *st = state_of(s);

	if (!st)
		return;
	if (st->slots)
		stop_all(s, st, true);
	unmap_board(s, st);
	free(st->slots);
	free(st->pfd);
	pthread_mutex_destroy(&st->mu);
	free(st);
	s->mixin_state = NULL;
}

/* Requests in flight in the live workers, from the scoreboard. */
static size_t prefork_active_count(ss_server *s)
{
	struct prefork *st = state_of(s);
	size_t n = 0;
	int i, a;

	pthread_mutex_lock(&st->mu);
	for (i = 0; i < st->nslots; i++)
		if (st->slots[i].pid && (a = board_get(&st->board[i].active)) > 0)
			n += (size_t)a;
	pthread_mutex_unlock(&st->mu);
	return n;
}

/* The two models on this engine, each a table of the same slots: the
 * worker's model (the sync model's loop, or the coroutine model's) is
 * what tells them apart. */
static int plain_init(ss_server *s)
{
	return engine_init(s, &ss_sync_mixin);
}

static int prefork_coroutine_init(ss_server *s)
{
	return engine_init(s, &ss_coroutine_mixin);
}

/* Plain prefork: each worker runs requests inline, one at a time. */
const ss_mixin ss_prefork_mixin = {
	.name = "prefork",
	.init = plain_init,
	.service_actions = prefork_service_actions,
	.server_close = prefork_server_close,
	.destroy = prefork_destroy,
	.active_count = prefork_active_count,
	.serve_forever = prefork_serve_forever,
};

/* prefork+coroutine: every worker runs a loop full of coroutines. */
const ss_mixin ss_prefork_coroutine_mixin = {
	.name = "prefork+coroutine",
	.init = prefork_coroutine_init,
	.service_actions = prefork_service_actions,
	.server_close = prefork_server_close,
	.destroy = prefork_destroy,
	.active_count = prefork_active_count,
	.serve_forever = prefork_serve_forever,
};
