/*
 * server.c - BaseServer: construction and teardown, the wait/wakeup loop
 * (serve_forever, handle_request, shutdown), the base implementations of
 * the overridable steps, and the life of a request.
 *
 * The loop waits on the listening socket and a wakeup channel (a socket
 * pair).  shutdown() sets a flag and sends a byte on it, so it is
 * async-signal-safe and stops the loop at once; a byte sent by a forked
 * child (a handler calling shutdown there) stops the parent too.  The
 * stop plan says when the requests still in flight are cut.
 */
#include "ss_internal.h"
#include <socketserver/selector.h>

#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>

#define BACKOFF_FIRST 0.05	/* first pause after EMFILE, seconds */

static int make_selector(ss_server *s);
static struct ss__stop_plan *plan_of(const ss_server *s);


/* ------------------------------------------------------------------ */
/* Construction and teardown                                           */
/* ------------------------------------------------------------------ */

/* Options and their defaults, in one place (documented in socketserver.h). */
static void set_defaults(ss_server *s)
{
	s->fd = -1;
	ss__srv(s)->wake_fd[0] = ss__srv(s)->wake_fd[1] = -1;
	ss__srv(s)->forward_fd = -1;
	ss__srv(s)->plan = &ss__srv(s)->stop_plan;
	ss__plan_reset(ss__srv(s)->plan);
	s->allow_reuse_address = s->ops->family != AF_UNIX;
	s->allow_reuse_port = false;
	s->request_queue_size = SOMAXCONN;
	s->max_packet_size = 65536;
	s->timeout = -1;
	s->block_on_close = true;
	s->close_grace = -1;
	s->daemon_threads = false;
	s->thread_stack_size = SS_THREAD_STACK;
	s->max_children = 40;
	s->accept_backoff_max = 1.0;
	s->workers = 0;
	s->queue_size = 0;
	s->max_requests = 0;
	s->min_spare = s->max_spare = 0;
	s->coroutine_stack_size = SS_COROUTINE_STACK;
	s->selector = NULL;
}

/* The lock and the wakeup pipe. */
static int init_sync(ss_server *s)
{
	struct ss__lock *l = calloc(1, sizeof *l);
	int rc;

	if (!l)
		return ss__set_errno_msg(s->errmsg, -ENOMEM, "server");
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cv, NULL);
	ss__srv(s)->lock = l;
	if ((rc = ss__wakeup_new(ss__srv(s)->wake_fd)) < 0)
		return ss__set_errno_msg(s->errmsg, rc, "socketpair");
	return 0;
}

/*
 * A datagram server's count of dropped datagrams, in shared memory: the
 * workers of a prefork model receive datagrams in processes of their
 * own, and the count (and its "report the first one" rule) is the whole
 * server's.  Returns 0 or a negative errno with s->errmsg set.
 */
static int init_dropped(ss_server *s)
{
	void *m;

	if (!ss__is_dgram(s))
		return 0;
	m = mmap(NULL, sizeof *ss__srv(s)->dropped, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return ss__set_errno_msg(s->errmsg, -errno, "mmap");
	ss__srv(s)->dropped = m;
	return 0;
}

/* Free what init_sync, init_dropped and set_defaults made; the socket
 * must be closed. */
static void release(ss_server *s)
{
	struct ss__lock *l = ss__lock_of(s);

	if (ss__srv(s)->dropped)
		munmap(ss__srv(s)->dropped, sizeof *ss__srv(s)->dropped);
	ss__close(ss__srv(s)->wake_fd[0]);
	ss__close(ss__srv(s)->wake_fd[1]);
	if (l) {
		pthread_mutex_destroy(&l->mu);
		pthread_cond_destroy(&l->cv);
		free(l);
	}
	ss_selector_free(ss__srv(s)->sel);
	free(ss__srv(s)->packet_buf);
	free(ss__srv(s));
}

ss_server *ss_server_new(const ss_server_ops *ops, const ss_mixin *mixin,
			 const char *address, const ss_handler *handler,
			 int flags, ss_error *err)
{
	static const ss_handler no_handler;
	struct ss__server *ls;
	ss_server *s;
	int rc;

	ls = calloc(1, sizeof *ls);
	if (!ls) {
		ss__error_set(err, -ENOMEM, "server: Cannot allocate memory");
		return NULL;
	}
	s = &ls->pub;
	s->ops = ops;
	s->mixin = mixin ? mixin : &ss_sync_mixin;
	s->handler = handler ? handler : &no_handler;
	set_defaults(s);
	rc = ss_addr_parse(&s->requested, address,
			   ops->family == AF_UNIX ? AF_UNIX : AF_UNSPEC, err);
	if (rc < 0)
		goto out_free;
	s->address = s->requested;
	rc = init_sync(s);
	if (rc == 0)
		rc = init_dropped(s);
	if (rc == 0)
		rc = make_selector(s);	/* now: it needs a descriptor */
	if (rc < 0)
		goto out_err;
	rc = ss__mixin_init(s, s->mixin);
	if (rc < 0) {
		ss__set_errno_msg(s->errmsg, rc, "%s mixin", s->mixin->name);
		goto out_err;
	}
	if (!(flags & SS_DEFER_BIND)) {
		rc = ss_server_bind(s);
		if (rc == 0)
			rc = ss_server_activate(s);
		if (rc < 0)
			goto out_mixin;
	}
	return s;

out_mixin:
	s->ops->server_close(s);
	ss__mixin_destroy(s, s->mixin);
out_err:
	ss__error_set(err, rc, s->errmsg);
out_free:
	release(s);
	return NULL;
}

int ss_server_bind(ss_server *s)
{
	if (s->fd >= 0)
		return ss__set_errno_msg(s->errmsg, -EISCONN, "bind");
	return s->ops->server_bind(s);
}

int ss_server_activate(ss_server *s)
{
	if (s->fd < 0)
		return ss__set_errno_msg(s->errmsg, -EBADF, "activate (not bound)");
	return s->ops->server_activate(s);
}

/* Mark the loop as running in this thread; -EBUSY if it already runs. */
int ss__enter_serving(ss_server *s, bool need_selector)
{
	struct ss__lock *l = ss__lock_of(s);
	int rc = 0;

	pthread_mutex_lock(&l->mu);
	if (ss__srv(s)->serving)
		rc = -EBUSY;
	else if (ss__srv(s)->closed || s->fd < 0)
		rc = -EBADF;
	else if (need_selector && !ss_server_selector(s))
		rc = -EINVAL;
	else {
		ss__srv(s)->serving = true;
		l->serving_thread = pthread_self();
		if (!ss__stop_pending(s))
			ss__plan_reset(plan_of(s));	/* a new serving session */
	}
	pthread_mutex_unlock(&l->mu);
	return rc;
}

void ss__leave_serving(ss_server *s)
{
	struct ss__lock *l = ss__lock_of(s);
	double until = ss__now() + 0.1;	/* a poke takes microseconds */

	/* consume the shutdown requests made until now (flag and wakeup
	 * bytes, waiting for the bytes of those still being sent) so the
	 * next serve_forever serves again */
	while (__atomic_load_n(&ss__srv(s)->stop_pokes, __ATOMIC_ACQUIRE) > 0 &&
	       ss__now() < until)
		sched_yield();
	ss__wakeup_drain(ss__srv(s)->wake_fd[0]);
	__atomic_store_n(&ss__srv(s)->stop_requested, 0, __ATOMIC_RELEASE);
	pthread_mutex_lock(&l->mu);
	ss__srv(s)->serving = false;
	pthread_cond_broadcast(&l->cv);
	pthread_mutex_unlock(&l->mu);
}

/* ------------------------------------------------------------------ */
/* The stop plan: when requests in flight are cut                      */
/* ------------------------------------------------------------------ */

#define NO_CUT INT64_MAX

/* Monotonic nanoseconds (async-signal-safe, unlike nothing else here). */
static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The server's plan (the pointer moves when prefork shares it). */
static struct ss__stop_plan *plan_of(const ss_server *s)
{
	return __atomic_load_n(&ss__srv(s)->plan, __ATOMIC_ACQUIRE);
}

void ss__plan_move(ss_server *s, struct ss__stop_plan *to)
{
	struct ss__stop_plan *from = plan_of(s);

	__atomic_store_n(&to->start_ns, __atomic_load_n(&from->start_ns, __ATOMIC_ACQUIRE),
			 __ATOMIC_RELAXED);
	__atomic_store_n(&to->grace_ns, __atomic_load_n(&from->grace_ns, __ATOMIC_ACQUIRE),
			 __ATOMIC_RELAXED);
	__atomic_store_n(&to->cut_ns, __atomic_load_n(&from->cut_ns, __ATOMIC_ACQUIRE),
			 __ATOMIC_RELEASE);
	__atomic_store_n(&ss__srv(s)->plan, to, __ATOMIC_RELEASE);
}

void ss__plan_reset(struct ss__stop_plan *p)
{
	__atomic_store_n(&p->start_ns, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&p->grace_ns, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&p->cut_ns, NO_CUT, __ATOMIC_RELEASE);
}

/* Note when the stop began (the first time only). */
static void plan_started(struct ss__stop_plan *p, int64_t now)
{
	int64_t zero = 0;

	__atomic_compare_exchange_n(&p->start_ns, &zero, now, false,
				    __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

/* Plan the cut at `at` (ns) after a grace of `grace` ns, unless an
 * earlier cut is planned: a plan only ever moves closer.  Lock-free, so
 * signal handlers and other processes (a shared plan) may call it. */
static void plan_cut(struct ss__stop_plan *p, int64_t at, int64_t grace)
{
	int64_t cur = __atomic_load_n(&p->cut_ns, __ATOMIC_ACQUIRE);

	while (at < cur) {
		__atomic_store_n(&p->grace_ns, grace < 0 ? 0 : grace, __ATOMIC_RELAXED);
		if (__atomic_compare_exchange_n(&p->cut_ns, &cur, at, false,
						__ATOMIC_RELEASE, __ATOMIC_ACQUIRE))
			break;
	}
}

double ss__cut_deadline(const ss_server *s, double *grace)
{
	const struct ss__stop_plan *v[2] = { plan_of(s), ss__srv(s)->parent_plan };
	int64_t best = NO_CUT, g = 0, c;
	int i;

	for (i = 0; i < 2; i++) {
		if (!v[i])
			continue;
		c = __atomic_load_n(&v[i]->cut_ns, __ATOMIC_ACQUIRE);
		if (c < best) {
			best = c;
			g = __atomic_load_n(&v[i]->grace_ns, __ATOMIC_RELAXED);
		}
	}
	if (best == NO_CUT)
		return -1;
	if (grace)
		*grace = (double)g / 1e9;
	return (double)best / 1e9;
}

bool ss__cond_wait_cut(ss_server *s, pthread_cond_t *cv, pthread_mutex_t *mu)
{
	double cut = ss__cut_deadline(s, NULL), slice = ss__now() + SS__CUT_POLL;

	if (cut >= 0 && ss__remaining_ms(cut) == 0)
		return false;
	ss__cond_wait_until(cv, mu, cut >= 0 && cut < slice ? cut : slice);
	cut = ss__cut_deadline(s, NULL);
	return cut < 0 || ss__remaining_ms(cut) > 0;
}

void ss__stop_loop(ss_server *s)
{
	struct ss__server *ls = ss__srv(s);

	/* counted while the flag is set and the byte not yet sent, so a
	 * loop that leaves on the flag alone waits for the byte before it
	 * drains the channel (else the byte would stop the next loop) */
	__atomic_add_fetch(&ls->stop_pokes, 1, __ATOMIC_ACQ_REL);
	plan_started(plan_of(s), now_ns());
	__atomic_store_n(&ls->stop_requested, 1, __ATOMIC_RELEASE);
	ss__wakeup_poke(ls->wake_fd[1]);	/* async-signal-safe, no SIGPIPE */
	__atomic_sub_fetch(&ls->stop_pokes, 1, __ATOMIC_ACQ_REL);
}

void ss_server_shutdown(ss_server *s)
{
	ss__stop_loop(s);
	if (ss__srv(s)->forward_fd >= 0)
		ss__wakeup_poke(ss__srv(s)->forward_fd);	/* the whole server stops */
}

void ss_server_clear_shutdown(ss_server *s)
{
	ss__wakeup_drain(ss__srv(s)->wake_fd[0]);
	__atomic_store_n(&ss__srv(s)->stop_requested, 0, __ATOMIC_RELEASE);
	ss__plan_reset(plan_of(s));
}

void ss_server_cut(ss_server *s)
{
	int64_t now = now_ns();

	plan_started(plan_of(s), now);
	plan_cut(plan_of(s), now, now - __atomic_load_n(&plan_of(s)->start_ns, __ATOMIC_ACQUIRE));
	ss_server_shutdown(s);
}

void ss__plan_cut_in(ss_server *s, double grace)
{
	int64_t now = now_ns(), g;

	plan_started(plan_of(s), now);
	if (grace < 0)
		return;
	g = grace > 1e9 ? (int64_t)1e18 : (int64_t)(grace * 1e9);
	plan_cut(plan_of(s), now + g, g);
}

void ss_server_close_within(ss_server *s, double grace)
{
	struct ss__lock *l = ss__lock_of(s);

	pthread_mutex_lock(&l->mu);
	if (ss__srv(s)->serving && pthread_equal(l->serving_thread, pthread_self())) {
		/* from a handler under sync: stop the loop, close later */
		pthread_mutex_unlock(&l->mu);
		ss_server_shutdown(s);
		return;
	}
	if (!ss__srv(s)->closed)
		ss__plan_cut_in(s, grace);	/* before the stop: a request inline
					   on the loop reads it */
	while (ss__srv(s)->serving) {
		pthread_mutex_unlock(&l->mu);
		ss_server_shutdown(s);
		pthread_mutex_lock(&l->mu);
		if (ss__srv(s)->serving)
			pthread_cond_wait(&l->cv, &l->mu);
	}
	if (ss__srv(s)->closed) {
		pthread_mutex_unlock(&l->mu);
		return;
	}
	ss__srv(s)->closed = true;
	pthread_mutex_unlock(&l->mu);
	if (ss__srv(s)->sel && s->fd >= 0)
		ss_selector_unregister(ss__srv(s)->sel, s->fd);
	if (ss__is_dgram(s)) {
		/* requests in flight reply on the server's socket: it stays
		 * open until they are done */
		ss__mixin_server_close(s, s->mixin, grace);
		s->ops->server_close(s);
	} else {
		/* stop accepting first, then wait for connections in flight */
		s->ops->server_close(s);
		ss__mixin_server_close(s, s->mixin, grace);
	}
}

void ss_server_close(ss_server *s)
{
	ss_server_close_within(s, s->close_grace);
}

void ss_server_free(ss_server *s)
{
	if (!s)
		return;
	if (!ss__srv(s)->is_child)
		ss_server_close(s);
	ss__mixin_destroy(s, s->mixin);
	if (s->fd >= 0)
		s->ops->server_close(s);
	release(s);
}

int ss_server_fileno(const ss_server *s)
{
	return s->ops->fileno(s);
}

const char *ss_server_address(const ss_server *s, char *buf, size_t len)
{
	return ss_addr_format(&s->address, buf, len);
}

int ss_server_set_layer(ss_server *s, const ss_layer *layer, void *data)
{
	char a[SS_ADDRSTRLEN];

	if (ss__is_dgram(s) && layer) {
		snprintf(s->errmsg, sizeof s->errmsg,
			 "%s on %s: needs a stream server (%s is datagram)",
			 layer->name, ss_server_address(s, a, sizeof a), s->ops->name);
		return -EPROTONOSUPPORT;
	}
	ss__srv(s)->layer = layer;
	ss__srv(s)->layer_data = data;
	return 0;
}

size_t ss_server_active_count(ss_server *s)
{
	return ss__mixin_active_count(s, s->mixin);
}

unsigned long long ss_server_dropped_datagrams(const ss_server *s)
{
	return ss__srv(s)->dropped ? __atomic_load_n(ss__srv(s)->dropped, __ATOMIC_RELAXED) : 0;
}

/* ------------------------------------------------------------------ */
/* The loop                                                            */
/* ------------------------------------------------------------------ */

/*
 * A stop came through the wakeup channel.  A worker process (prefork)
 * lets go of its copy of the listener at once, even while a request runs
 * inline: once every process has, the kernel refuses new clients instead
 * of queueing connections nobody will accept, to reset them when the
 * last copy closes.  (The server's own process closes its copy first
 * thing in ss_server_close.)
 */
void ss__stop_seen(ss_server *s)
{
	__atomic_store_n(&ss__srv(s)->stop_requested, 1, __ATOMIC_RELEASE);
	plan_started(plan_of(s), now_ns());
	if (ss__srv(s)->is_child && s->fd >= 0 && !ss__is_dgram(s)) {
		if (ss__srv(s)->sel)
			ss_selector_unregister(ss__srv(s)->sel, s->fd);
		s->ops->server_close(s);
	}
}

/* Markers for the loop's own fds in the selector. */
static char wake_marker, listen_marker;

/* Make the loop's selector with the wanted backend (again, if the user
 * chose another after construction) watching the wakeup pipe.  Returns 0
 * or a negative errno with s->errmsg set. */
static int make_selector(ss_server *s)
{
	ss_error err;

	if (ss__srv(s)->sel && (!s->selector ||
		       !strcmp(s->selector, ss_selector_backend(ss__srv(s)->sel))))
		return 0;
	ss_selector_free(ss__srv(s)->sel);
	ss__srv(s)->sel = ss_selector_new(s->selector, &err);
	if (!ss__srv(s)->sel) {
		memcpy(s->errmsg, err.msg, sizeof s->errmsg);
		return err.code;
	}
	if (ss_selector_register(ss__srv(s)->sel, ss__srv(s)->wake_fd[0], SS_EVENT_READ, &wake_marker) < 0) {
		ss_selector_free(ss__srv(s)->sel);
		ss__srv(s)->sel = NULL;
		return ss__set_errno_msg(s->errmsg, -ENOMEM, "selector");
	}
	return 0;
}

/* A worker process (prefork) shares the listener with its siblings: only
 * one of them is woken per connection. */
static int listen_events(const ss_server *s)
{
	return SS_EVENT_READ | (ss__srv(s)->is_child ? SS_EVENT_EXCLUSIVE : 0);
}

/* The selector with the listener on it, ready for the loop. */
struct ss_selector *ss_server_selector(ss_server *s)
{
	int rc;

	if (make_selector(s) < 0)
		return NULL;
	if (s->fd >= 0 && ss__srv(s)->backoff_until == 0) {
		rc = ss_selector_register(ss__srv(s)->sel, s->fd, listen_events(s), &listen_marker);
		if (rc < 0 && rc != -EEXIST) {
			ss__set_errno_msg(s->errmsg, rc, "selector %s",
					  ss_selector_backend(ss__srv(s)->sel));
			return NULL;
		}
	}
	return ss__srv(s)->sel;
}

/* Pause or resume watching the listener (EMFILE back-off). */
static void watch_listener(ss_server *s, bool on)
{
	ss_selector_modify(ss__srv(s)->sel, s->fd, on ? listen_events(s) : 0, &listen_marker);
}

/* How long the loop may wait: the caller's bound, the end of an accept
 * back-off, and the mixin's next timer, whichever comes first. */
static int wait_bound(ss_server *s, int timeout_ms)
{
	int left;
	double t;

	if (ss__srv(s)->backoff_until > 0) {
		left = ss__remaining_ms(ss__srv(s)->backoff_until);
		if (left == 0) {
			ss__srv(s)->backoff_until = 0;
			watch_listener(s, true);
		} else if (timeout_ms < 0 || left < timeout_ms) {
			timeout_ms = left;
		}
	}
	if (s->mixin->next_timeout && (t = s->mixin->next_timeout(s)) >= 0) {
		left = ss__timeout_ms(t);
		if (timeout_ms < 0 || left < timeout_ms)
			timeout_ms = left;
	}
	return timeout_ms;
}

/*
 * Wait for the selector: a byte on the wakeup pipe marks a stop, events
 * on the mixin's fds go to its dispatch slot.  Returns 1 when the
 * listener is ready, 0 when not (timeout, stop requested: check
 * stop_pending), or a negative errno.
 */
static int wait_ready(ss_server *s, int timeout_ms)
{
	ss_selector_event ev[64];
	int i, n, listener = 0;

	if (!ss_server_selector(s))
		return -ENOMEM;
	n = ss_selector_select(ss__srv(s)->sel, ev, 64, wait_bound(s, timeout_ms) / 1000.0);
	if (n < 0)
		return ss__set_errno_msg(s->errmsg, n, "select");
	for (i = 0; i < n; i++) {
		if (ev[i].data == &wake_marker)
			ss__stop_seen(s);
		else if (ev[i].data == &listen_marker)
			listener = 1;
		else if (s->mixin->dispatch)
			s->mixin->dispatch(s, &ev[i]);
	}
	if (ss__stop_pending(s))
		return 0;
	return listener;
}

/*
 * Out of descriptors or memory: the server's accept back-off episode.
 * Accepting pauses (the kernel backlog holds the clients), the pause
 * doubling up to accept_backoff_max with every failure after the last
 * pause ended (a loop that fails while another loop's pause runs joins
 * that pause), and the episode is reported once, not once per attempt
 * or per loop.  Returns the monotonic time accepting may resume.
 */
static double start_backoff(ss_server *s, int err)
{
	char msg[SS_ERRMSG_MAX];
	bool first = ss__srv(s)->backoff == 0;
	double now = ss__now();

	if (!first && now < ss__srv(s)->backoff_end)
		return ss__srv(s)->backoff_end;
	ss__srv(s)->backoff = first ? BACKOFF_FIRST : ss__srv(s)->backoff * 2;
	if (ss__srv(s)->backoff > s->accept_backoff_max)
		ss__srv(s)->backoff = s->accept_backoff_max;
	ss__srv(s)->backoff_end = now + ss__srv(s)->backoff;
	if (first) {
		snprintf(msg, sizeof msg, "%.400s (pausing accepts, retrying for as long as it lasts)",
			 s->errmsg);
		memcpy(s->errmsg, msg, sizeof msg);
		s->ops->handle_error(s, NULL, err);
	}
	return ss__srv(s)->backoff_end;
}

/* Errors of get_request that say "try again later", not "report me". */
static bool transient(int err)
{
	return err == -EAGAIN || err == -EINTR || err == -ECONNABORTED ||
	       err == -EPROTO || err == -EPERM;
}

static bool out_of_resources(int err)
{
	return err == -EMFILE || err == -ENFILE || err == -ENOBUFS || err == -ENOMEM;
}

/* The accept policy of every loop that takes requests (what it returns:
 * ss_internal.h). */
int ss__take_request(ss_server *s, ss_request **out, double *resume)
{
	ss_request *r = NULL;
	int rc;

	*out = NULL;
	if (ss__stop_pending(s))
		return -EAGAIN;	/* nothing is accepted after shutdown() */
	rc = s->ops->get_request(s, &r);
	if (rc < 0) {
		if (out_of_resources(rc)) {
			*resume = start_backoff(s, rc);
			return rc;
		}
		if (!transient(rc))
			s->ops->handle_error(s, NULL, rc);
		return -EAGAIN;
	}
	ss__srv(s)->backoff = 0;		/* the episode, if one ran, is over */
	if (!s->ops->verify_request(s, r)) {
		ss_server_shutdown_request(s, r);
		ss_request_free(r);
		return 0;
	}
	*out = r;
	return 0;
}

/*
 * Take one request from a ready listener (ss__take_request) and hand it
 * to the mixin's process_request; out of resources, stop watching the
 * listener until the back-off ends (wait_bound watches it again).
 * Returns 0 when a request was taken (whatever became of it), -EAGAIN
 * when none was.
 */
static int handle_request_noblock(ss_server *s)
{
	ss_request *r;
	double resume;
	int rc = ss__take_request(s, &r, &resume);

	if (rc < 0) {
		if (rc != -EAGAIN) {
			ss__srv(s)->backoff_until = resume;
			watch_listener(s, false);
		}
		return -EAGAIN;
	}
	if (r)
		ss__mixin_process_request(s, s->mixin, r);
	return 0;
}

static void service(ss_server *s)
{
	s->ops->service_actions(s);
	ss__mixin_service_actions(s, s->mixin);
}

int ss_server_serve_forever(ss_server *s, double poll_interval)
{
	if (s->mixin->serve_forever)
		return s->mixin->serve_forever(s, poll_interval);
	return ss__serve_loop(s, poll_interval);
}

int ss__serve_loop(ss_server *s, double poll_interval)
{
	int interval = ss__timeout_ms(poll_interval);
	int rc, i;

	rc = ss__enter_serving(s, true);
	if (rc < 0)
		return rc;
	while (!ss__stop_pending(s)) {
		rc = wait_ready(s, interval);
		if (rc < 0)
			break;
		/* A ready listener may hold several connections (or
		 * datagrams): take them without a wait in between, up to
		 * SS__ACCEPT_BATCH, then let the others have a turn. */
		for (i = 0; rc > 0 && i < SS__ACCEPT_BATCH; i++)
			if (handle_request_noblock(s) < 0 || ss__srv(s)->backoff_until > 0)
				break;
		service(s);
		rc = 0;
	}
	ss__leave_serving(s);
	return rc;
}

/*
 * handle_request's second half under a model that runs its requests on
 * the loop's own selector (one with the dispatch slot: coroutines), where
 * process_request only started the request: run the loop's turns (the
 * mixin's fds and timers, service actions) until the mixin has no more
 * requests in flight than before (it had before the request was taken),
 * or shutdown is requested.  The listener is not watched meanwhile: one
 * call handles one request.  No time limit, as for a request run inline.
 * Returns 0 when the request has ended, -ECANCELED when shutdown came
 * first (server_close then finishes the request), or the wait's negative
 * errno.
 */
static int run_taken_request(ss_server *s, size_t before)
{
	int rc = 0;

	if (!s->mixin->dispatch)
		return 0;
	watch_listener(s, false);
	while (ss_server_active_count(s) > before) {
		if (ss__stop_pending(s)) {
			rc = -ECANCELED;
			break;
		}
		rc = wait_ready(s, -1);
		if (rc < 0)
			break;
		service(s);
		rc = 0;
	}
	watch_listener(s, true);
	return rc;
}

int ss_server_handle_request(ss_server *s, double timeout)
{
	double deadline;
	size_t before;
	int rc = ss__enter_serving(s, true);

	if (rc < 0)
		return rc;
	if (timeout < 0)
		timeout = s->timeout;
	deadline = timeout < 0 ? -1 : ss__now() + timeout;
	for (;;) {
		if (ss__stop_pending(s)) {
			rc = -ECANCELED;
			break;
		}
		rc = wait_ready(s, ss__remaining_ms(deadline));
		if (rc < 0)
			break;
		before = ss_server_active_count(s);
		if (rc > 0 && handle_request_noblock(s) == 0) {
			rc = run_taken_request(s, before);
			break;
		}
		if (deadline >= 0 && ss__remaining_ms(deadline) == 0 && !ss__stop_pending(s)) {
			s->ops->handle_timeout(s);
			rc = -ETIMEDOUT;
			break;
		}
	}
	ss__leave_serving(s);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The mixin slots (NULL: the rule in ss_mixin's comment)              */
/* ------------------------------------------------------------------ */

/* The sync model: no slot at all; requests run inline through the
 * server's own process_request. */
const ss_mixin ss_sync_mixin = { .name = "sync" };

int ss__mixin_init(ss_server *s, const ss_mixin *m)
{
	return m->init ? m->init(s) : 0;
}

int ss__mixin_process_request(ss_server *s, const ss_mixin *m, ss_request *r)
{
	return m->process_request ? m->process_request(s, r) : s->ops->process_request(s, r);
}

void ss__mixin_service_actions(ss_server *s, const ss_mixin *m)
{
	if (m->service_actions)
		m->service_actions(s);
}

void ss__mixin_server_close(ss_server *s, const ss_mixin *m, double grace)
{
	if (m->server_close)
		m->server_close(s, grace);
}

void ss__mixin_destroy(ss_server *s, const ss_mixin *m)
{
	if (m->destroy)
		m->destroy(s);
}

size_t ss__mixin_active_count(ss_server *s, const ss_mixin *m)
{
	return m->active_count ? m->active_count(s) : 0;
}

/* ------------------------------------------------------------------ */
/* Base steps                                                          */
/* ------------------------------------------------------------------ */

bool ss_base_verify_request(ss_server *s, ss_request *r)
{
	return true;
}

int ss_base_process_request(ss_server *s, ss_request *r)
{
	int rc;

	ss__rq(r)->on_loop = true;	/* inline on the loop (sync, a prefork worker) */
	rc = ss_server_run_request(s, r);

	ss_request_free(r);
	return rc;
}

/* One line on stderr, written whole with one write() so lines from
 * threads and children never interleave.  The message may quote a peer
 * (ss_request_error(r, ..., "bad command '%s'", line)), so it goes
 * through ss_escape_message: the line stays one line, cut to fit if it
 * must, and always ends in its newline. */
void ss_base_handle_error(ss_server *s, ss_request *r, int err)
{
	char line[SS_ERRMSG_MAX + 2 * SS_ADDRSTRLEN + 64];
	char a[SS_ADDRSTRLEN], p[SS_ADDRSTRLEN];
	const char *msg;
	size_t n;
	int k;

	ss_server_address(s, a, sizeof a);
	if (r) {
		k = snprintf(line, sizeof line, "socketserver %s: request from %s failed: ",
			     a, ss_request_peer(r, p, sizeof p));
		msg = r->errmsg[0] ? r->errmsg : strerror(-err);
	} else {
		k = snprintf(line, sizeof line, "socketserver %s: ", a);
		msg = s->errmsg[0] ? s->errmsg : strerror(-err);
	}
	n = k < 0 ? 0 : (size_t)k;
	if (n > sizeof line - 2)
		n = sizeof line - 2;	/* keep room for the newline */
	ss_escape_message(line + n, sizeof line - 1 - n, msg);
	n += strlen(line + n);
	line[n++] = '\n';
	if (ss__write_nosigpipe(STDERR_FILENO, line, n) < 0)
		return;	/* nowhere left to report */
}

void ss_base_handle_timeout(ss_server *s)
{
}

void ss_base_service_actions(ss_server *s)
{
}

/* ------------------------------------------------------------------ */
/* Requests                                                            */
/* ------------------------------------------------------------------ */

int ss__worker_after_fork(ss_server *s, const int wake[2])
{
	int fds[2], rc;

	ss__srv(s)->is_child = true;
	ss__srv(s)->unlink_on_close = false;
	/* a thread of the parent may have been between flag and byte at
	 * the fork: that stop is the parent's, and no thread here ends it */
	ss__srv(s)->stop_pokes = 0;
	if (wake) {
		fds[0] = wake[0];
		fds[1] = wake[1];
	} else if ((rc = ss__wakeup_new(fds)) < 0) {
		return ss__set_errno_msg(s->errmsg, rc, "socketpair");
	}
	ss__close(ss__srv(s)->wake_fd[0]);
	ss__close(ss__srv(s)->wake_fd[1]);
	ss__srv(s)->wake_fd[0] = fds[0];
	ss__srv(s)->wake_fd[1] = fds[1];
	/* the parent's epoll instance is shared through fork: make our own */
	ss_selector_free(ss__srv(s)->sel);
	ss__srv(s)->sel = NULL;
	ss__srv(s)->backoff_until = 0;
	return make_selector(s);
}

void ss__child_after_fork(ss_server *s)
{
	ss__srv(s)->is_child = true;
	ss__srv(s)->unlink_on_close = false;
	ss__srv(s)->stop_pokes = 0;	/* the parent's threads' pokes */
	if (!ss__is_dgram(s)) {
		ss__close(s->fd);	/* the child serves one connection */
		s->fd = -1;
	}
}
