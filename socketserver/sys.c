/*
 * sys.c - the table of system calls the library makes (ss__sys) and the
 * small helpers every file shares: clocks, poll with a deadline, error
 * messages.  Tests replace ss__sys entries to inject faults.
 */
#include "ss_internal.h"

#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define REAL_SYSCALLS {						\
	.socket = socket,						\
	.bind = bind,							\
	.listen = listen,						\
	.accept4 = accept4,						\
	.connect = connect,						\
	.recv = recv,							\
	.send = send,							\
	.recvfrom = recvfrom,						\
	.sendto = sendto,						\
	.poll = poll,							\
	.close = close,							\
	.pthread_create = pthread_create,				\
	.fork = fork,							\
	.poke = send,							\
	.shutdown = shutdown,						\
}

struct ss__syscalls ss__sys = REAL_SYSCALLS;

/* Put back the real system calls after a test replaced some. */
void ss__sys_reset(void)
{
	static const struct ss__syscalls real = REAL_SYSCALLS;

	ss__sys = real;
}

/* Seconds on the monotonic clock. */
double ss__now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int ss__cond_init_monotonic(pthread_cond_t *cv)
{
	pthread_condattr_t ca;
	int err = pthread_condattr_init(&ca);

	if (err)
		return -err;
	err = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (!err)
		err = pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
	return -err;
}

bool ss__cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, double deadline)
{
	struct timespec ts;

	if (deadline < 0) {
		pthread_cond_wait(cv, mu);
		return true;
	}
	ts.tv_sec = (time_t)deadline;
	ts.tv_nsec = (long)((deadline - (double)ts.tv_sec) * 1e9);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return pthread_cond_timedwait(cv, mu, &ts) != ETIMEDOUT;
}

int ss__cpus(void)
{
	cpu_set_t set;
	long n = -1;

	if (sched_getaffinity(0, sizeof set, &set) == 0)
		n = CPU_COUNT(&set);
	if (n < 1)
		n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		return 1;
	return n > 1024 ? 1024 : (int)n;
}

int ss__thread_attr(const ss_server *s, pthread_attr_t *a, bool detached)
{
	size_t min = (size_t)PTHREAD_STACK_MIN, size = s->thread_stack_size;
	int err = pthread_attr_init(a);

	if (err)
		return -err;
	if (size) {
		size = size > SIZE_MAX / SS__STACK_FACTOR ? SIZE_MAX : size * SS__STACK_FACTOR;
		err = pthread_attr_setstacksize(a, size < min ? min : size);
	}
	if (!err && detached)
		err = pthread_attr_setdetachstate(a, PTHREAD_CREATE_DETACHED);
	if (err) {
		pthread_attr_destroy(a);
		return -err;
	}
	return 0;
}

/* A timeout in seconds as poll() milliseconds, rounded up so a short
 * timeout never becomes a busy 0; negative means forever (-1). */
int ss__timeout_ms(double seconds)
{
	double ms;

	if (seconds < 0)
		return -1;
	ms = seconds * 1000.0;
	if (ms >= 2147483647.0)
		return 2147483647;
	return (int)ms < ms ? (int)ms + 1 : (int)ms;
}

/* Milliseconds left until a monotonic deadline (0 when past), or -1 for
 * a negative deadline (none). */
int ss__remaining_ms(double deadline)
{
	double left;

	if (deadline < 0)
		return -1;
	left = deadline - ss__now();
	return left <= 0 ? 0 : ss__timeout_ms(left);
}

/* Wait for events on fd for at most timeout_ms (-1: forever), retrying
 * EINTR with the time that is left.  Returns 0 when ready (including
 * error/hang-up conditions, which the next I/O call reports),
 * -ETIMEDOUT, or a negative errno. */
__thread int (*ss__wait_hook)(int fd, short events, int timeout_ms);

int ss__wait_fd(int fd, short events, int timeout_ms)
{
	double deadline = timeout_ms < 0 ? -1 : ss__now() + timeout_ms / 1000.0;
	struct pollfd p = { .fd = fd, .events = events };
	int n;

	if (ss__wait_hook)
		return ss__wait_hook(fd, events, timeout_ms);
	for (;;) {
		n = ss__sys.poll(&p, 1, timeout_ms);
		if (n > 0)
			return 0;
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
		timeout_ms = ss__remaining_ms(deadline);
	}
}

/* "<what>: <strerror>" into buf; returns err so callers can return it. */
int ss__set_errno_msg(char *buf, int err, const char *fmt, ...)
{
	char what[SS_ERRMSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	/* the cause always fits; the step (which quotes addresses) gets
	 * the rest of the message */
	snprintf(buf, SS_ERRMSG_MAX, "%.*s: %s",
		 (int)(SS_ERRMSG_MAX - 3 - strlen(strerror(-err))), what, strerror(-err));
	return err;
}

/* Fill an optional ss_error. */
void ss__error_set(ss_error *err, int code, const char *msg)
{
	if (!err)
		return;
	err->code = code;
	snprintf(err->msg, sizeof err->msg, "%s", msg);
}

/* Close fd if it is one, keeping errno for the caller's message. */
void ss__close(int fd)
{
	int saved = errno;

	if (fd >= 0)
		ss__sys.close(fd);
	errno = saved;
}

int ss_sleep(double seconds)
{
	struct timespec ts, left;
	int ms = ss__timeout_ms(seconds < 0 ? 0 : seconds);

	if (ss__wait_hook) {
		int rc = ss__wait_hook(-1, 0, ms);

		return rc == -ETIMEDOUT ? 0 : rc;
	}
	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &left) < 0 && errno == EINTR)
		ts = left;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Wakeup channels                                                     */
/* ------------------------------------------------------------------ */

int ss__wakeup_new(int fds[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0)
		return -errno;
	return 0;
}

void ss__wakeup_poke(int fd)
{
	int saved = errno;
	ssize_t n;

	do
		n = ss__sys.poke(fd, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	errno = saved;
}

void ss__wakeup_drain(int fd)
{
	char buf[64];

	while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
		;
}

ssize_t ss__write_nosigpipe(int fd, const void *buf, size_t len)
{
	sigset_t pipe_only, old, pending;
	struct timespec zero = { 0, 0 };
	bool was_pending;
	ssize_t n;
	int saved;

	sigemptyset(&pipe_only);
	sigaddset(&pipe_only, SIGPIPE);
	sigpending(&pending);
	was_pending = sigismember(&pending, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
	do
		n = write(fd, buf, len);
	while (n < 0 && errno == EINTR);
	saved = errno;
	/* A SIGPIPE this write raised is pending on the thread now: take it
	 * before unblocking, unless one was pending already (not ours). */
	if (n < 0 && errno == EPIPE && !was_pending)
		while (sigtimedwait(&pipe_only, NULL, &zero) < 0 && errno == EINTR)
			;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = saved;
	return n;
}

/* ------------------------------------------------------------------ */
/* Signals in the library's child processes                            */
/* ------------------------------------------------------------------ */

/* Signals a program catches to steer its server (stop, reload, ...):
 * their handlers belong to the server's process, not to its children.
 * Others (SIGALRM, SIGCHLD, ...) may serve a handler's own work in the
 * child and are left as they are. */
static const int steering_signals[] = {
	SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2,
};

static pid_t parent_pid;		/* the server's process */
static void (*child_end)(void);		/* what SIGTERM does here */
static void (*child_orphaned)(void);	/* what the parent's death does */

/* SIGTERM in a child: end this process's work. */
static void on_child_term(int sig)
{
	int saved = errno;

	child_end();
	errno = saved;
}

/* SIGHUP in a child is the parent-death signal (a terminal's hangup is
 * the parent's to handle): act only if the server process has really
 * gone, since PR_SET_PDEATHSIG also fires when just the thread that
 * forked us ends, and then getppid() still names the parent. */
static void on_child_hup(int sig)
{
	int saved = errno;

	if (getppid() != parent_pid)
		child_orphaned();
	errno = saved;
}

static sigset_t mask_before_fork;	/* a child restores it */

pid_t ss__fork_child(void)
{
	sigset_t all;
	pid_t pid;
	int saved;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &mask_before_fork);
	pid = ss__sys.fork();
	if (pid != 0) {
		saved = errno;
		pthread_sigmask(SIG_SETMASK, &mask_before_fork, NULL);
		errno = saved;
	}
	return pid;
}

void ss__child_signals(pid_t parent, void (*end)(void), void (*orphaned)(void))
{
	struct sigaction sa, old;
	sigset_t mask;
	size_t i;

	parent_pid = parent;
	child_end = end;
	child_orphaned = orphaned;
	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	for (i = 0; i < sizeof steering_signals / sizeof steering_signals[0]; i++) {
		if (sigaction(steering_signals[i], NULL, &old) < 0 ||
		    (!(old.sa_flags & SA_SIGINFO) &&
		     (old.sa_handler == SIG_DFL || old.sa_handler == SIG_IGN)))
			continue;
		sa.sa_handler = SIG_DFL;
		sigaction(steering_signals[i], &sa, NULL);
	}
	sa.sa_handler = SIG_IGN;	/* the terminal's: the parent decides */
	sigaction(SIGINT, &sa, NULL);
	/* no SA_RESTART: a blocking call returns EINTR, which the library
	 * retries, so a handler a sanitizer defers to the next call runs */
	sa.sa_handler = on_child_hup;
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = on_child_term;
	sigaction(SIGTERM, &sa, NULL);
	/* the mask from before ss__fork_child, and ours unblocked */
	mask = mask_before_fork;
	sigdelset(&mask, SIGTERM);
	sigdelset(&mask, SIGHUP);
	pthread_sigmask(SIG_SETMASK, &mask, NULL);
	/* the parent's death reaches us as SIGHUP; if it died before this
	 * line, no signal will come: look now */
	prctl(PR_SET_PDEATHSIG, SIGHUP);
	if (getppid() != parent)
		orphaned();
}
