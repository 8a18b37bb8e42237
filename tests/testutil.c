/*
 * testutil.c - the helpers of testutil.h: servers on ephemeral addresses,
 * serving threads, clients with deadlines, the echo handler, counting of
 * fds / threads / children, condition polling, the temp dir, shared
 * counters, handle_error counting and stderr capture.
 */
#include "testutil.h"
#include "tap.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* Time and conditions                                                 */
/* ------------------------------------------------------------------ */

double tu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

bool tu_wait_until(bool (*cond)(void *arg), void *arg, double seconds)
{
	double deadline = tu_now() + seconds;

	for (;;) {
		if (cond(arg))
			return true;
		if (tu_now() >= deadline)
			return cond(arg);
		nap_ms(1);
	}
}

static bool threads_at_most(void *arg)
{
	return tu_count_threads() <= *(int *)arg;
}

bool tu_wait_threads_at_most(int n, double seconds)
{
	return tu_wait_until(threads_at_most, &n, seconds);
}

struct active_arg {
	ss_server *s;
	size_t n;
};

static bool active_is(void *arg)
{
	struct active_arg *a = arg;

	return ss_server_active_count(a->s) == a->n;
}

bool tu_wait_active(ss_server *s, size_t n, double seconds)
{
	struct active_arg a = { s, n };

	return tu_wait_until(active_is, &a, seconds);
}

static void *idle_main(void *arg)
{
	return arg;
}

void tu_init(void)
{
	pthread_t t;

	signal(SIGPIPE, SIG_IGN);
	if (pthread_create(&t, NULL, idle_main, NULL) == 0)
		pthread_join(t, NULL);
}

/* ------------------------------------------------------------------ */
/* Temp dir                                                            */
/* ------------------------------------------------------------------ */

static char tmpdir[64];
static pid_t tmpdir_owner;

/* Remove the temp dir and what is in it (one level: the tests make only
 * files and sockets there).  Only the process that made it does this. */
static void tmpdir_remove(void)
{
	DIR *d;
	struct dirent *e;
	char path[512];

	if (!tmpdir[0] || getpid() != tmpdir_owner)
		return;
	d = opendir(tmpdir);
	if (d) {
		while ((e = readdir(d)) != NULL) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
			unlink(path);
		}
		closedir(d);
	}
	rmdir(tmpdir);
}

const char *tu_tmpdir(void)
{
	if (tmpdir[0])
		return tmpdir;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/sstest-XXXXXX");
	if (!mkdtemp(tmpdir))
		tap_bail("mkdtemp: %s", strerror(errno));
	tmpdir_owner = getpid();
	atexit(tmpdir_remove);
	return tmpdir;
}

const char *tu_tmppath(const char *tag)
{
	static char ring[8][256];
	static atomic_int next;
	int i = atomic_fetch_add(&next, 1);
	char *p = ring[i % 8];

	snprintf(p, sizeof(ring[0]), "%s/%s-%d.sock", tu_tmpdir(), tag, i);
	return p;
}

/* ------------------------------------------------------------------ */
/* Servers                                                             */
/* ------------------------------------------------------------------ */

ss_server *tu_server_try(const ss_server_ops *ops, const ss_mixin *m,
			 const ss_handler *h, const char *addr, ss_error *err)
{
	if (!addr)
		addr = ops->family == AF_UNIX ? tu_tmppath(ops->name)
					      : "127.0.0.1:0";
	return ss_server_new(ops, m, addr, h, 0, err);
}

ss_server *tu_server(const ss_server_ops *ops, const ss_mixin *m,
		     const ss_handler *h, const char *addr)
{
	ss_error err = { 0 };
	ss_server *s = tu_server_try(ops, m, h, addr, &err);

	if (!s)
		tap_bail("cannot make a %s server on %s: %s", ops->name,
			 addr ? addr : "(default)", err.msg);
	return s;
}

struct serve_arg {
	ss_server *s;
	double interval;
};

static void *serve_main(void *p)
{
	struct serve_arg a = *(struct serve_arg *)p;
	int rc;

	free(p);
	rc = ss_server_serve_forever(a.s, a.interval);
	return (void *)(intptr_t)rc;
}

void tu_serve_start_interval(ss_server *s, pthread_t *t, double interval)
{
	struct serve_arg *a = malloc(sizeof(*a));
	int rc;

	if (!a)
		tap_bail("out of memory");
	a->s = s;
	a->interval = interval;
	rc = pthread_create(t, NULL, serve_main, a);
	if (rc)
		tap_bail("pthread_create: %s", strerror(rc));
}

void tu_serve_start(ss_server *s, pthread_t *t)
{
	tu_serve_start_interval(s, t, 0.5);
}

int tu_serve_stop(ss_server *s, pthread_t *t)
{
	void *ret = NULL;

	ss_server_shutdown(s);
	if (!tu_join_within(*t, TU_IO_TIMEOUT, &ret))
		tap_bail("serve_forever did not stop within %.0f s of shutdown",
			 TU_IO_TIMEOUT);
	return (int)(intptr_t)ret;
}

double tu_close_within_ms(ss_server *s, double grace)
{
	double t0 = tu_now();

	ss_server_close_within(s, grace);
	return (tu_now() - t0) * 1000;
}

bool tu_join_within(pthread_t t, double seconds, void **ret)
{
	struct timespec ts;
	double whole;

	clock_gettime(CLOCK_REALTIME, &ts);
	whole = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 + seconds;
	ts.tv_sec = (time_t)whole;
	ts.tv_nsec = (long)((whole - (double)ts.tv_sec) * 1e9);
	return pthread_timedjoin_np(t, ret, &ts) == 0;
}

/* ------------------------------------------------------------------ */
/* Clients                                                             */
/* ------------------------------------------------------------------ */

static void set_io_timeout(int fd, double seconds)
{
	struct timeval tv;

	tv.tv_sec = (time_t)seconds;
	tv.tv_usec = (suseconds_t)((seconds - (double)tv.tv_sec) * 1e6);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Bind a unix datagram client to an autobound abstract name, so the
 * server has an address to reply to. */
static int autobind(int fd)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	if (bind(fd, (struct sockaddr *)&sun, sizeof(sa_family_t)) < 0)
		return -errno;
	return 0;
}

/* Wait until fd is ready for events (or failed) or the monotonic deadline
 * passes; 0, -ETIMEDOUT or -errno. */
static int wait_events(int fd, short events, double deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	int rc;

	for (;;) {
		double left = deadline - tu_now();

		if (left <= 0)
			return -ETIMEDOUT;
		rc = poll(&p, 1, (int)(left * 1000) + 1);
		if (rc > 0)
			return 0;
		if (rc < 0 && errno != EINTR)
			return -errno;
	}
}

/* Wait until fd is writable (or failed); 0, -ETIMEDOUT or -errno. */
static int wait_writable(int fd, double deadline)
{
	return wait_events(fd, POLLOUT, deadline);
}

/*
 * connect(), surviving EINTR: a signal can interrupt a blocking connect
 * even in a program that catches none (SIGCHLD, ignored by default, is
 * queued while the thread that forks a server's child has every signal
 * blocked, and then interrupts whichever thread takes it).  A TCP connect
 * goes on in the background (connecting again says EALREADY until it is
 * done, then EISCONN); a unix one is simply made again.  0 or -errno.
 */
static int connect_retry(int fd, const struct sockaddr *a, socklen_t len)
{
	double deadline = tu_now() + TU_IO_TIMEOUT;
	socklen_t elen;
	int err, rc;

	while (connect(fd, a, len) < 0) {
		if (errno == EISCONN)
			return 0;
		if (errno != EINTR && errno != EALREADY)
			return -errno;
		if (errno == EALREADY) {
			rc = wait_writable(fd, deadline);
			if (rc < 0)
				return rc;
			elen = sizeof err;
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
				return -errno;
			if (err)
				return -err;
		}
	}
	return 0;
}

int tu_connect_try(const ss_server *s)
{
	const ss_addr *a = &s->address;
	int type = s->ops->socktype;
	int fd, rc;

	fd = socket(a->family, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	set_io_timeout(fd, TU_IO_TIMEOUT);
	if (type == SOCK_DGRAM && a->family == AF_UNIX) {
		rc = autobind(fd);
		if (rc < 0)
			goto out_close;
	}
	rc = connect_retry(fd, (const struct sockaddr *)&a->ss, a->len);
	if (rc < 0)
		goto out_close;
	return fd;
out_close:
	close(fd);
	return rc;
}

int tu_connect(const ss_server *s)
{
	char buf[SS_ADDRSTRLEN];
	int fd = tu_connect_try(s);

	if (fd < 0)
		tap_bail("connect to %s: %s",
			 ss_addr_format(&s->address, buf, sizeof(buf)),
			 strerror(-fd));
	return fd;
}

int tu_wait_readable(int fd, double timeout)
{
	return wait_events(fd, POLLIN, tu_now() + timeout);
}

int tu_send_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

ssize_t tu_read_to_eof(int fd, void *buf, size_t cap, double timeout)
{
	double deadline = tu_now() + timeout;
	char *p = buf;
	size_t got = 0;
	char sink[4096];

	for (;;) {
		int rc = tu_wait_readable(fd, deadline - tu_now());
		ssize_t k;

		if (rc < 0)
			return rc;
		if (got < cap)
			k = recv(fd, p + got, cap - got, MSG_DONTWAIT);
		else
			k = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
		if (k == 0)
			return (ssize_t)got;
		if (k < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		if (got < cap)
			got += (size_t)k;
	}
}

ssize_t tu_read_exact(int fd, void *buf, size_t n, double timeout)
{
	double deadline = tu_now() + timeout;
	char *p = buf;
	size_t got = 0;

	while (got < n) {
		int rc = tu_wait_readable(fd, deadline - tu_now());
		ssize_t k;

		if (rc < 0)
			return rc;
		k = recv(fd, p + got, n - got, MSG_DONTWAIT);
		if (k == 0)
			break;
		if (k < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		got += (size_t)k;
	}
	return (ssize_t)got;
}

/* Stream exchange: send while reading (the echo may come back before we
 * finish sending), half-close, read to EOF. */
static ssize_t stream_exchange(int fd, const char *msg, size_t n,
			       char *out, size_t cap)
{
	double deadline = tu_now() + TU_IO_TIMEOUT;
	size_t sent = 0, got = 0;
	bool shut = false;
	char sink[4096];

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t k;
		int left_ms = (int)((deadline - tu_now()) * 1000);

		if (!shut && sent == n) {
			shutdown(fd, SHUT_WR);
			shut = true;
		}
		if (!shut)
			p.events |= POLLOUT;
		if (left_ms <= 0)
			return -ETIMEDOUT;
		if (poll(&p, 1, left_ms) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (!shut && (p.revents & POLLOUT)) {
			k = send(fd, msg + sent, n - sent,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
			if (k > 0)
				sent += (size_t)k;
			else if (k < 0 && errno != EAGAIN && errno != EINTR)
				return -errno;
		}
		if (!(p.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		if (got < cap)
			k = recv(fd, out + got, cap - got, MSG_DONTWAIT);
		else
			k = recv(fd, sink, sizeof(sink), MSG_DONTWAIT);
		if (k == 0)
			return shut ? (ssize_t)got : -ECONNRESET;
		if (k < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (k > 0 && got < cap)
			got += (size_t)k;
	}
}

static ssize_t dgram_exchange(int fd, const void *msg, size_t n,
			      char *out, size_t cap)
{
	ssize_t k;
	int rc;

	do
		k = send(fd, msg, n, MSG_NOSIGNAL);
	while (k < 0 && errno == EINTR);
	if (k < 0)
		return -errno;
	rc = tu_wait_readable(fd, TU_IO_TIMEOUT);
	if (rc < 0)
		return rc;
	do
		k = recv(fd, out, cap, MSG_DONTWAIT);
	while (k < 0 && errno == EINTR);
	return k < 0 ? -errno : k;
}

ssize_t tu_roundtrip_fd(int fd, int socktype, const void *msg, size_t n,
			char *out, size_t cap)
{
	if (socktype == SOCK_DGRAM)
		return dgram_exchange(fd, msg, n, out, cap);
	return stream_exchange(fd, msg, n, out, cap);
}

bool tu_echo_once(const ss_server *s, const char *msg)
{
	char out[64];
	size_t n = strlen(msg);

	return tu_roundtrip(s, msg, n, out, sizeof(out)) == (ssize_t)n &&
	       !memcmp(out, msg, n);
}

bool tu_unanswered(ssize_t n)
{
	return n == 0 || n == -ECONNRESET;
}

ssize_t tu_roundtrip(const ss_server *s, const void *msg, size_t n,
		     char *out, size_t cap)
{
	int fd = tu_connect_try(s);
	ssize_t r;

	if (fd < 0)
		return fd;
	r = tu_roundtrip_fd(fd, s->ops->socktype, msg, n, out, cap);
	close(fd);
	return r;
}

/* ------------------------------------------------------------------ */
/* The echo handler                                                    */
/* ------------------------------------------------------------------ */

int tu_echo(ss_request *r)
{
	char buf[16384];

	for (;;) {
		ssize_t n = ss_read_some(r, buf, sizeof(buf));

		if (n <= 0)
			return (int)n;
		n = ss_write_all(r, buf, (size_t)n);
		if (n < 0)
			return (int)n;
	}
}

const ss_handler tu_echo_handler = {
	.handle = tu_echo,
};

/* ------------------------------------------------------------------ */
/* Process state                                                       */
/* ------------------------------------------------------------------ */

static int count_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	if (!d)
		tap_bail("opendir %s: %s", path, strerror(errno));
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

int tu_count_fds(void)
{
	return count_dir("/proc/self/fd") - 1;	/* the dir's own fd */
}

int tu_count_threads(void)
{
	return count_dir("/proc/self/task");
}

int tu_children_of(pid_t pid, pid_t *pids, int max)
{
	char path[300], buf[512], *p, state;
	struct dirent *e;
	int n = 0, ppid;
	DIR *d = opendir("/proc");
	FILE *f;

	if (!d)
		tap_bail("opendir /proc: %s", strerror(errno));
	while ((e = readdir(d)) && n < max) {
		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
		fclose(f);
		if (p && sscanf(p, ") %c %d", &state, &ppid) == 2 &&
		    ppid == pid && state != 'Z')
			pids[n++] = atoi(e->d_name);
	}
	closedir(d);
	return n;
}

bool tu_fd_closed(int fd)
{
	return fcntl(fd, F_GETFD) < 0 && errno == EBADF;
}

bool tu_no_children(void)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	return waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 &&
	       errno == ECHILD;
}

/* ------------------------------------------------------------------ */
/* Shared counters                                                     */
/* ------------------------------------------------------------------ */

atomic_int *tu_shared_counters(size_t n)
{
	atomic_int *c = mmap(NULL, n * sizeof(*c), PROT_READ | PROT_WRITE,
			     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	size_t i;

	if (c == MAP_FAILED)
		tap_bail("mmap: %s", strerror(errno));
	for (i = 0; i < n; i++)
		atomic_init(&c[i], 0);
	return c;
}

/* ------------------------------------------------------------------ */
/* handle_error calls seen in this process                             */
/* ------------------------------------------------------------------ */

void tu_errors_add(tu_errors *e, const char *msg)
{
	pthread_mutex_lock(&e->mu);
	e->count++;
	snprintf(e->last, sizeof(e->last), "%s", msg);
	pthread_mutex_unlock(&e->mu);
}

int tu_errors_take(tu_errors *e, char *last, size_t len)
{
	int n;

	pthread_mutex_lock(&e->mu);
	n = e->count;
	if (last)
		snprintf(last, len, "%s", e->last);
	e->count = 0;
	e->last[0] = '\0';
	pthread_mutex_unlock(&e->mu);
	return n;
}

bool tu_errors_any(void *e)
{
	tu_errors *errs = e;
	bool any;

	pthread_mutex_lock(&errs->mu);
	any = errs->count > 0;
	pthread_mutex_unlock(&errs->mu);
	return any;
}

/* ------------------------------------------------------------------ */
/* stderr capture                                                      */
/* ------------------------------------------------------------------ */

static int saved_stderr = -1;
static int capture_fd = -1;

void tu_stderr_begin(void)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/stderr-XXXXXX", tu_tmpdir());
	capture_fd = mkstemp(path);
	if (capture_fd < 0)
		tap_bail("mkstemp: %s", strerror(errno));
	unlink(path);
	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	if (saved_stderr < 0 || dup2(capture_fd, STDERR_FILENO) < 0)
		tap_bail("dup stderr: %s", strerror(errno));
}

char *tu_stderr_end(void)
{
	off_t len;
	char *text;
	ssize_t k;

	fflush(stderr);
	dup2(saved_stderr, STDERR_FILENO);
	close(saved_stderr);
	saved_stderr = -1;
	len = lseek(capture_fd, 0, SEEK_END);
	text = calloc(1, (size_t)(len > 0 ? len : 0) + 1);
	if (!text)
		tap_bail("out of memory");
	k = len > 0 ? pread(capture_fd, text, (size_t)len, 0) : 0;
	text[k > 0 ? k : 0] = '\0';
	close(capture_fd);
	capture_fd = -1;
	return text;
}

/* ------------------------------------------------------------------ */
/* Child programs                                                      */
/* ------------------------------------------------------------------ */

double tu_now_ms(void)
{
	return tu_now() * 1e3;
}

int tu_left_ms(double deadline_ms)
{
	double left = deadline_ms - tu_now_ms();

	return left <= 0 ? 0 : (int)left + 1;
}

static char build_dir[PATH_MAX];

static void find_build_dir(void)
{
	ssize_t n = readlink("/proc/self/exe", build_dir, sizeof build_dir - 1);

	if (n < 0)
		tap_bail("readlink /proc/self/exe: %s", strerror(errno));
	build_dir[n] = '\0';
	for (int up = 0; up < 2; up++)		/* BUILD/tests/t_... */
		if (strrchr(build_dir, '/'))
			*strrchr(build_dir, '/') = '\0';
}

const char *tu_build_dir(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, find_build_dir);
	return build_dir;
}

const char *tu_example_path(const char *name)
{
	static char path[PATH_MAX + 64];

	snprintf(path, sizeof path, "%s/examples/%s", tu_build_dir(), name);
	if (access(path, X_OK) < 0)
		tap_bail("%s: %s (build the examples first)", path, strerror(errno));
	return path;
}

pid_t tu_spawn(const char *path, const char *const argv[], int *in, int *out, int *err)
{
	int pi[2] = { -1, -1 }, po[2], pe[2] = { -1, -1 }, null;
	pid_t pid;

	if ((in && pipe2(pi, O_CLOEXEC) < 0) || pipe2(po, O_CLOEXEC) < 0 ||
	    (err && pipe2(pe, O_CLOEXEC) < 0))
		tap_bail("pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		tap_bail("fork: %s", strerror(errno));
	if (pid == 0) {
		if (in) {
			dup2(pi[0], STDIN_FILENO);
		} else {
			null = open("/dev/null", O_RDONLY);
			dup2(null, STDIN_FILENO);
		}
		dup2(po[1], STDOUT_FILENO);
		if (err)
			dup2(pe[1], STDERR_FILENO);
		execv(path, (char *const *)argv);
		dprintf(STDERR_FILENO, "exec %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	if (in) {
		close(pi[0]);
		*in = pi[1];
	}
	close(po[1]);
	*out = po[0];
	if (err) {
		close(pe[1]);
		*err = pe[0];
	}
	return pid;
}

int tu_wait_exit(pid_t pid, int timeout_ms, double *elapsed_ms)
{
	const struct timespec tick = { 0, 5 * 1000 * 1000 };
	double start = tu_now_ms();
	int status;
	pid_t r;

	while ((r = waitpid(pid, &status, WNOHANG)) == 0 &&
	       tu_now_ms() - start < timeout_ms)
		nanosleep(&tick, NULL);
	if (elapsed_ms)
		*elapsed_ms = tu_now_ms() - start;
	if (r == 0) {
		tap_diag("pid %d still running after %d ms: killed", (int)pid, timeout_ms);
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		return -1;
	}
	if (r < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

ssize_t tu_read_until(int fd, char *buf, size_t size, bool line, int timeout_ms)
{
	double deadline = tu_now_ms() + timeout_ms;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	size_t got = 0;
	ssize_t n;
	int rc;

	buf[0] = '\0';
	while (got + 1 < size) {
		rc = poll(&p, 1, tu_left_ms(deadline));
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			return -1;
		n = read(fd, buf + got, line ? 1 : size - 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
		buf[got] = '\0';
		if (line && buf[got - 1] == '\n')
			break;
	}
	buf[got] = '\0';
	return (ssize_t)got;
}

int tu_run_example(const char *const argv[], char *out, size_t out_size, char *err,
		   size_t err_size, int timeout_ms)
{
	int fo, fe;
	pid_t pid = tu_spawn(tu_example_path(argv[0]), argv, NULL, &fo, &fe);

	tu_read_until(fe, err, err_size, false, timeout_ms);
	tu_read_until(fo, out, out_size, false, timeout_ms);
	close(fo);
	close(fe);
	return tu_wait_exit(pid, timeout_ms, NULL);
}

int tu_exit_status(pid_t pid)
{
	int st = 0;
	pid_t r;

	do
		r = waitpid(pid, &st, 0);
	while (r < 0 && errno == EINTR);
	if (r != pid)
		return -errno;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 1000 + WTERMSIG(st);
}

int tu_count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		if (*s == '\n' || s[1] == '\0')
			n++;
	return n;
}

void tu_check_prompt_close(const ss_mixin *m, bool daemon, const char *what)
{
	ss_server *s = tu_server(&ss_tcp_server_ops, m,
				 &tu_echo_handler, NULL);
	int base = tu_count_threads();
	pthread_t t;
	double t0, ms;
	int fd;

	if (daemon)
		s->daemon_threads = true;
	else
		s->block_on_close = false;
	tu_serve_start(s, &t);
	fd = tu_connect(s);
	tu_wait_active(s, 1, TU_IO_TIMEOUT);
	t0 = tu_now();
	tu_serve_stop(s, &t);
	ss_server_close(s);
	ms = (tu_now() - t0) * 1000;
	ok(ms < 1000, "%s: close with an idle client returned in %.1f ms", what, ms);
	close(fd);	/* the handler sees EOF and ends */
	ok(tu_wait_active(s, 0, 5.0), "%s: the handler ended after its client left",
	   what);
	ok(tu_wait_threads_at_most(base, 5.0), "%s: its thread is gone", what);
	ss_server_free(s);
}

int tu_tcp_connect(const char *address)
{
	ss_error err;
	ss_addr a;
	int fd;

	if (ss_addr_parse(&a, address, AF_UNSPEC, &err) < 0) {
		tap_diag("%s", err.msg);
		return -1;
	}
	fd = socket(a.family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a.ss, a.len) == 0)
		return fd;
	tap_diag("connect %s: %s", address, strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}
