/*
 * selector.c - ss_selector over epoll, poll and select (Redis ae.c's
 * shape: one small interface, a backend chosen by name or the best one).
 *
 * A registry indexed by fd holds what each fd is watched for and its
 * data; a dense list of registered fds lets poll and select build their
 * arguments without scanning empty slots.  epoll keeps the kernel's copy
 * in step; a paused fd (events 0) is removed from epoll and re-added when
 * modified back.
 */
#include <socketserver/selector.h>
#include "ss_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <unistd.h>

enum backend { EPOLL, POLL, SELECT };

struct slot {
	int events;		/* SS_EVENT_*; 0: paused */
	int pos;		/* index in dense[], -1: not registered */
	void *data;
};

struct ss_selector {
	enum backend backend;
	int epfd;			/* epoll only */
	struct slot *slots;		/* indexed by fd */
	int nslots;
	int *dense;			/* registered fds */
	int ndense, capdense;
	struct pollfd *pfds;		/* poll scratch, capdense long */
	struct epoll_event *eevs;	/* epoll scratch */
	int capeevs;
};

static const char *const names[] = { "epoll", "poll", "select" };

/* Grow the registry so slots[fd] exists. */
static int grow_slots(ss_selector *sel, int fd)
{
	int n = sel->nslots ? sel->nslots : 64;
	struct slot *s;
	int i;

	while (n <= fd)
		n *= 2;
	if (n == sel->nslots)
		return 0;
	s = realloc(sel->slots, (size_t)n * sizeof *s);
	if (!s)
		return -ENOMEM;
	for (i = sel->nslots; i < n; i++)
		s[i] = (struct slot){ .pos = -1 };
	sel->slots = s;
	sel->nslots = n;
	return 0;
}

/* Make room for one more fd in the dense list and the poll scratch. */
static int grow_dense(ss_selector *sel)
{
	int n = sel->capdense ? sel->capdense * 2 : 16;
	struct pollfd *p;
	int *d;

	if (sel->ndense < sel->capdense)
		return 0;
	d = realloc(sel->dense, (size_t)n * sizeof *d);
	if (!d)
		return -ENOMEM;
	sel->dense = d;
	p = realloc(sel->pfds, (size_t)n * sizeof *p);
	if (!p)
		return -ENOMEM;
	sel->pfds = p;
	sel->capdense = n;
	return 0;
}

static struct slot *slot_of(const ss_selector *sel, int fd)
{
	if (fd < 0 || fd >= sel->nslots || sel->slots[fd].pos < 0)
		return NULL;
	return &sel->slots[fd];
}

ss_selector *ss_selector_new(const char *backend, ss_error *err)
{
	ss_selector *sel;
	char msg[SS_ERRMSG_MAX];
	int b;

	for (b = 0; backend && b < 3 && strcmp(backend, names[b]); b++)
		;
	if (b == 3) {
		snprintf(msg, sizeof msg, "selector '%.64s': not available here (epoll, poll, select)",
			 backend);
		ss__error_set(err, -EINVAL, msg);
		return NULL;
	}
	sel = calloc(1, sizeof *sel);
	if (!sel) {
		ss__error_set(err, -ENOMEM, "selector: Cannot allocate memory");
		return NULL;
	}
	sel->backend = backend ? (enum backend)b : EPOLL;
	sel->epfd = -1;
	if (sel->backend == EPOLL && (sel->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		ss__set_errno_msg(msg, -errno, "epoll_create1");
		ss__error_set(err, -errno, msg);
		free(sel);
		return NULL;
	}
	return sel;
}

const char *ss_selector_backend(const ss_selector *sel)
{
	return names[sel->backend];
}

size_t ss_selector_count(const ss_selector *sel)
{
	return (size_t)sel->ndense;
}

#define ALL_EVENTS (SS_EVENT_READ | SS_EVENT_WRITE | SS_EVENT_EXCLUSIVE)
#define IO_EVENTS (SS_EVENT_READ | SS_EVENT_WRITE)

static uint32_t epoll_mask(int events)
{
	return (events & SS_EVENT_READ ? EPOLLIN : 0) |
	       (events & SS_EVENT_WRITE ? EPOLLOUT : 0) |
	       (events & SS_EVENT_EXCLUSIVE ? EPOLLEXCLUSIVE : 0);
}

/* Tell epoll about a change of fd's events from old to new (a paused fd,
 * with no I/O events, is not in epoll).  An exclusive registration cannot
 * be modified, only removed and added again. */
static int epoll_sync(ss_selector *sel, int fd, int old, int new)
{
	struct epoll_event ev = { .events = epoll_mask(new), .data.fd = fd };
	bool had = old & IO_EVENTS, has = new & IO_EVENTS;

	if (sel->backend != EPOLL || old == new)
		return 0;
	if (had && (!has || ((old | new) & SS_EVENT_EXCLUSIVE))) {
		if (epoll_ctl(sel->epfd, EPOLL_CTL_DEL, fd, &ev) < 0)
			return -errno;
		had = false;
	}
	if (has && epoll_ctl(sel->epfd, had ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	return 0;
}

int ss_selector_register(ss_selector *sel, int fd, int events, void *data)
{
	int rc;

	if (fd < 0 || !(events & IO_EVENTS) || (events & ~ALL_EVENTS))
		return -EINVAL;
	if (sel->backend == SELECT && fd >= FD_SETSIZE)
		return -EINVAL;
	if (slot_of(sel, fd))
		return -EEXIST;
	if ((rc = grow_slots(sel, fd)) < 0 || (rc = grow_dense(sel)) < 0)
		return rc;
	if ((rc = epoll_sync(sel, fd, 0, events)) < 0)
		return rc;
	sel->slots[fd] = (struct slot){ .events = events, .pos = sel->ndense, .data = data };
	sel->dense[sel->ndense++] = fd;
	return 0;
}

int ss_selector_modify(ss_selector *sel, int fd, int events, void *data)
{
	struct slot *s = slot_of(sel, fd);
	int rc;

	if (!s)
		return -ENOENT;
	if (events & ~ALL_EVENTS)
		return -EINVAL;
	if ((rc = epoll_sync(sel, fd, s->events, events)) < 0)
		return rc;
	s->events = events;
	s->data = data;
	return 0;
}

int ss_selector_unregister(ss_selector *sel, int fd)
{
	struct slot *s = slot_of(sel, fd);
	int last;

	if (!s)
		return -ENOENT;
	epoll_sync(sel, fd, s->events, 0);	/* a closed fd is gone anyway */
	last = sel->dense[--sel->ndense];
	sel->dense[s->pos] = last;
	sel->slots[last].pos = s->pos;
	*s = (struct slot){ .pos = -1 };
	return 0;
}

/* One ready fd into the caller's array. */
static void emit(const ss_selector *sel, ss_selector_event *out, int fd, int ready)
{
	const struct slot *s = &sel->slots[fd];

	out->fd = fd;
	out->events = ready & s->events & IO_EVENTS;
	out->data = s->data;
}

static int select_epoll(ss_selector *sel, ss_selector_event *out, int max, int ms)
{
	int n, i, ready;

	if (sel->capeevs < max) {
		struct epoll_event *e = realloc(sel->eevs, (size_t)max * sizeof *e);

		if (!e)
			return -ENOMEM;
		sel->eevs = e;
		sel->capeevs = max;
	}
	n = epoll_wait(sel->epfd, sel->eevs, max, ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (i = 0; i < n; i++) {
		uint32_t e = sel->eevs[i].events;

		ready = (e & (EPOLLIN | EPOLLERR | EPOLLHUP) ? SS_EVENT_READ : 0) |
			(e & (EPOLLOUT | EPOLLERR | EPOLLHUP) ? SS_EVENT_WRITE : 0);
		emit(sel, &out[i], sel->eevs[i].data.fd, ready);
	}
	return n;
}

static int select_poll(ss_selector *sel, ss_selector_event *out, int max, int ms)
{
	int i, n, got = 0, np = 0, ready;

	for (i = 0; i < sel->ndense; i++) {
		int fd = sel->dense[i], ev = sel->slots[fd].events;

		if (!ev)
			continue;
		sel->pfds[np++] = (struct pollfd){ .fd = fd,
			.events = (short)((ev & SS_EVENT_READ ? POLLIN : 0) |
					  (ev & SS_EVENT_WRITE ? POLLOUT : 0)) };
	}
	n = poll(sel->pfds, (nfds_t)np, ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (i = 0; i < np && got < max && n > 0; i++) {
		short r = sel->pfds[i].revents;

		if (!r)
			continue;
		ready = (r & (POLLIN | POLLERR | POLLHUP | POLLNVAL) ? SS_EVENT_READ : 0) |
			(r & (POLLOUT | POLLERR | POLLHUP | POLLNVAL) ? SS_EVENT_WRITE : 0);
		emit(sel, &out[got++], sel->pfds[i].fd, ready);
	}
	return got;
}

static int select_select(ss_selector *sel, ss_selector_event *out, int max, int ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	fd_set rd, wr;
	int i, n, top = -1, got = 0;

	FD_ZERO(&rd);
	FD_ZERO(&wr);
	for (i = 0; i < sel->ndense; i++) {
		int fd = sel->dense[i], ev = sel->slots[fd].events;

		if (ev & SS_EVENT_READ)
			FD_SET(fd, &rd);
		if (ev & SS_EVENT_WRITE)
			FD_SET(fd, &wr);
		if (ev && fd > top)
			top = fd;
	}
	n = select(top + 1, &rd, &wr, NULL, ms < 0 ? NULL : &tv);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (i = 0; i < sel->ndense && got < max && n > 0; i++) {
		int fd = sel->dense[i];
		int ready = (FD_ISSET(fd, &rd) ? SS_EVENT_READ : 0) |
			    (FD_ISSET(fd, &wr) ? SS_EVENT_WRITE : 0);

		if (ready)
			emit(sel, &out[got++], fd, ready);
	}
	return got;
}

int ss_selector_select(ss_selector *sel, ss_selector_event *events, int max,
		       double timeout)
{
	int ms = ss__timeout_ms(timeout);

	if (max <= 0)
		return -EINVAL;
	switch (sel->backend) {
	case EPOLL:
		return select_epoll(sel, events, max, ms);
	case POLL:
		return select_poll(sel, events, max, ms);
	default:
		return select_select(sel, events, max, ms);
	}
}

void ss_selector_free(ss_selector *sel)
{
	if (!sel)
		return;
	if (sel->epfd >= 0)
		close(sel->epfd);
	free(sel->slots);
	free(sel->dense);
	free(sel->pfds);
	free(sel->eevs);
	free(sel);
}
