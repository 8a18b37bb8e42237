/*
 * faultutil.c - wrappers for the ss__sys entries that fail on a schedule
 * (the next n calls, every nth call, at most max bytes per call), and the
 * data pattern the I/O tests send and check.
 */
#include "faultutil.h"

#include "ss_internal.h"

#include <errno.h>
#include <stdatomic.h>

/* One call's schedule and counters; every field is read by server
 * threads while the test thread may change it. */
struct sched {
	atomic_int left;	/* calls left to fail; < 0: all of them */
	atomic_int err_next;	/* errno for those */
	atomic_int every;	/* fail every nth call; 0: off */
	atomic_int err_every;
	atomic_size_t cap;	/* bytes per call; 0: no cap */
	atomic_long calls;
	atomic_long failed;
};

static struct sched sched[FU_NCALLS];
static atomic_long sends_without_nosignal;
static atomic_long accepted;	/* connections accept4 handed out */
static struct ss__syscalls real;

/* Decide whether this call of c fails: the errno to fail with, or 0. */
static int decide(enum fu_call c)
{
	struct sched *s = &sched[c];
	long n = atomic_fetch_add(&s->calls, 1) + 1;
	int every = atomic_load(&s->every);
	int left = atomic_load(&s->left);
	int err = 0;

	if (every > 0 && n % every == 0)
		err = atomic_load(&s->err_every);
	while (!err && left != 0) {
		if (left < 0 || atomic_compare_exchange_weak(&s->left, &left,
							     left - 1)) {
			err = atomic_load(&s->err_next);
			break;
		}
	}
	if (err)
		atomic_fetch_add(&s->failed, 1);
	return err;
}

/* len cut to c's cap. */
static size_t capped(enum fu_call c, size_t len)
{
	size_t cap = atomic_load(&sched[c].cap);

	return cap && len > cap ? cap : len;
}

static int w_accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	int e = decide(FU_ACCEPT4);

	if (e) {
		errno = e;
		return -1;
	}
	e = real.accept4(fd, addr, len, flags);
	if (e >= 0)
		atomic_fetch_add(&accepted, 1);
	return e;
}

static ssize_t w_send(int fd, const void *buf, size_t len, int flags)
{
	int e = decide(FU_SEND);

	if (!(flags & MSG_NOSIGNAL))
		atomic_fetch_add(&sends_without_nosignal, 1);
	if (e) {
		errno = e;
		return -1;
	}
	return real.send(fd, buf, capped(FU_SEND, len), flags);
}

static ssize_t w_recv(int fd, void *buf, size_t len, int flags)
{
	int e = decide(FU_RECV);

	if (e) {
		errno = e;
		return -1;
	}
	return real.recv(fd, buf, capped(FU_RECV, len), flags);
}

static ssize_t w_sendto(int fd, const void *buf, size_t len, int flags,
			const struct sockaddr *addr, socklen_t alen)
{
	int e = decide(FU_SENDTO);

	if (e) {
		errno = e;
		return -1;
	}
	return real.sendto(fd, buf, len, flags, addr, alen);
}

static ssize_t w_recvfrom(int fd, void *buf, size_t len, int flags,
			  struct sockaddr *addr, socklen_t *alen)
{
	int e = decide(FU_RECVFROM);

	if (e) {
		errno = e;
		return -1;
	}
	return real.recvfrom(fd, buf, len, flags, addr, alen);
}

static int w_poll(struct pollfd *fds, nfds_t n, int timeout_ms)
{
	int e = decide(FU_POLL);

	if (e) {
		errno = e;
		return -1;
	}
	return real.poll(fds, n, timeout_ms);
}

static int w_pthread_create(pthread_t *t, const pthread_attr_t *attr,
			    void *(*fn)(void *), void *arg)
{
	int e = decide(FU_PTHREAD_CREATE);

	if (e)
		return e;
	return real.pthread_create(t, attr, fn, arg);
}

static pid_t w_fork(void)
{
	int e = decide(FU_FORK);

	if (e) {
		errno = e;
		return -1;
	}
	return real.fork();
}

/* Zero every schedule and counter. */
static void clear_schedules(void)
{
	for (int c = 0; c < FU_NCALLS; c++) {
		atomic_store(&sched[c].left, 0);
		atomic_store(&sched[c].err_next, 0);
		atomic_store(&sched[c].every, 0);
		atomic_store(&sched[c].err_every, 0);
		atomic_store(&sched[c].cap, 0);
		atomic_store(&sched[c].calls, 0);
		atomic_store(&sched[c].failed, 0);
	}
	atomic_store(&sends_without_nosignal, 0);
	atomic_store(&accepted, 0);
}

void fu_install(void)
{
	ss__sys_reset();
	real = ss__sys;
	clear_schedules();
	ss__sys.accept4 = w_accept4;
	ss__sys.send = w_send;
	ss__sys.recv = w_recv;
	ss__sys.sendto = w_sendto;
	ss__sys.recvfrom = w_recvfrom;
	ss__sys.poll = w_poll;
	ss__sys.pthread_create = w_pthread_create;
	ss__sys.fork = w_fork;
}

void fu_reset(void)
{
	clear_schedules();
	ss__sys_reset();
}

void fu_fail_next(enum fu_call c, int n, int err)
{
	atomic_store(&sched[c].err_next, err);
	atomic_store(&sched[c].left, n);
}

void fu_fail_every(enum fu_call c, int nth, int err)
{
	atomic_store(&sched[c].err_every, err);
	atomic_store(&sched[c].every, nth);
}

void fu_cap_len(enum fu_call c, size_t max)
{
	atomic_store(&sched[c].cap, max);
}

long fu_accepted(void)
{
	return atomic_load(&accepted);
}

long fu_calls(enum fu_call c)
{
	return atomic_load(&sched[c].calls);
}

long fu_failures(enum fu_call c)
{
	return atomic_load(&sched[c].failed);
}

long fu_sends_without_nosignal(void)
{
	return atomic_load(&sends_without_nosignal);
}

/* ------------------------------------------------------------------ */

void fu_fill(unsigned char *buf, size_t len, size_t off)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = fu_pattern(off + i);
}

size_t fu_check(const unsigned char *buf, size_t len, size_t off)
{
	for (size_t i = 0; i < len; i++)
		if (buf[i] != fu_pattern(off + i))
			return i;
	return len;
}
