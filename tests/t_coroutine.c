/*
 * t_coroutine.c - the coroutine models: coroutine (one loop thread),
 * threads+coroutine (a loop per thread) and prefork+coroutine (a loop per
 * process); their echo, stop and leak checks, close with idle clients
 * among them, are t_echo_matrix's, as for every registered model.  2,000
 * concurrent clients driven by the test's own epoll against one coroutine
 * thread; a handler in ss_sleep does not stall the others; the handler's
 * timeout inside coroutines; a failing handler reported once; an idle
 * connection holding no stream buffer; a stack overflow hits the guard
 * page (in a forked child) instead of corrupting memory.
 * ss_server_handle_request under every model of the registry: it returns
 * once the request it took has been handled (run to its end where the
 * model runs it in the caller, started where another thread or process
 * runs it), and its timeout bounds only the wait for a request.
 */
#include "tap.h"
#include "testutil.h"
#include "ss_internal.h"	/* a request's buffers, for the idle-memory check */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MANY 2000		/* concurrent clients against one thread */

/* The coroutine models whose handlers run in this process, where
 * handle_error is recorded (prefork+coroutine's run in its workers). */
static const ss_mixin *const models[] = {
	&ss_coroutine_mixin,
	&ss_threads_coroutine_mixin,
};
#define NMODELS (sizeof models / sizeof models[0])

/* A server of a model with 2 workers where the model has workers. */
static ss_server *server(const ss_server_ops *ops, const ss_mixin *m,
			 const ss_handler *h)
{
	ss_server *s = tu_server(ops, m, h, NULL);

	s->workers = 2;
	return s;
}

/* ------------------------------------------------------------------ */
/* 2,000 concurrent clients on the test's own epoll                    */
/* ------------------------------------------------------------------ */

struct client {
	int fd;
	char msg[32];
	size_t len, got;
	char buf[32];
};

/* Raise the soft descriptor limit to what n clients need, if we may.
 * Returns how many clients fit. */
static int fit_clients(int n)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)n * 2 + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 0;
	if (rl.rlim_cur < need) {
		rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < need)
		n = (int)((rl.rlim_cur - 64) / 2);
	return n;
}

/* Read what has come back for c; true when its whole echo is there. */
static bool client_read(struct client *c)
{
	ssize_t k;

	while (c->got < c->len &&
	       (k = recv(c->fd, c->buf + c->got, c->len - c->got, 0)) > 0)
		c->got += (size_t)k;
	return c->got == c->len;
}

/* Wait on ep until every client has its echo; returns how many do. */
static int collect(int ep, struct client *cl, int n, double timeout)
{
	struct epoll_event ev[256];
	double end = tu_now() + timeout;
	int done = 0, i, k;

	while (done < n && tu_now() < end) {
		k = epoll_wait(ep, ev, 256, 100);
		for (i = 0; i < k; i++) {
			struct client *c = ev[i].data.ptr;

			if (c->got < c->len && client_read(c)) {
				done++;
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
			}
		}
	}
	return done;
}

static void test_many(void)
{
	int n = fit_clients(MANY), ep, i, done, right = 0, eofs = 0;
	ss_server *s = tu_server(&ss_tcp_server_ops, &ss_coroutine_mixin,
				 &tu_echo_handler, NULL);
	struct client *cl = calloc((size_t)n, sizeof *cl);
	double t0 = tu_now();
	pthread_t t;
	char b;

	if (n < MANY)
		tap_diag("descriptor limit: %d clients instead of %d", n, MANY);
	tu_serve_start(s, &t);
	ep = epoll_create1(EPOLL_CLOEXEC);
	for (i = 0; i < n; i++) {
		struct epoll_event e = { .events = EPOLLIN, .data.ptr = &cl[i] };

		cl[i].fd = tu_connect(s);
		cl[i].len = (size_t)snprintf(cl[i].msg, sizeof cl[i].msg, "client %d\n", i);
		if (tu_send_all(cl[i].fd, cl[i].msg, cl[i].len) < 0)
			tap_bail("send to the server failed: %s", strerror(errno));
		fcntl(cl[i].fd, F_SETFL, fcntl(cl[i].fd, F_GETFL) | O_NONBLOCK);
		epoll_ctl(ep, EPOLL_CTL_ADD, cl[i].fd, &e);
	}
	done = collect(ep, cl, n, 30.0);
	for (i = 0; i < n; i++)
		right += cl[i].got == cl[i].len && !memcmp(cl[i].buf, cl[i].msg, cl[i].len);
	is_int(done, n, "many: every one of %d concurrent clients got its echo", n);
	is_int(right, n, "many: each echo is the client's own message");
	is_int(ss_server_active_count(s), n,
	       "many: %d coroutines alive at once on one thread", n);
	for (i = 0; i < n; i++)
		shutdown(cl[i].fd, SHUT_WR);
	for (i = 0; i < n; i++) {
		fcntl(cl[i].fd, F_SETFL, fcntl(cl[i].fd, F_GETFL) & ~O_NONBLOCK);
		eofs += tu_read_to_eof(cl[i].fd, &b, 1, TU_IO_TIMEOUT) == 0;
		close(cl[i].fd);
	}
	is_int(eofs, n, "many: every connection ended with EOF after the client's");
	ok(tu_wait_active(s, 0, TU_IO_TIMEOUT), "many: every coroutine ended");
	tap_diag("many: %d clients in %.0f ms", n, (tu_now() - t0) * 1000);
	tu_serve_stop(s, &t);
	ss_server_free(s);
	close(ep);
	free(cl);
}

/* ------------------------------------------------------------------ */
/* handle_error, recorded                                              */
/* ------------------------------------------------------------------ */

static struct {
	pthread_mutex_t mu;
	int calls, err;
	char msg[SS_ERRMSG_MAX];
} rec = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void record_error(ss_server *s, ss_request *r, int err)
{
	pthread_mutex_lock(&rec.mu);
	rec.calls++;
	rec.err = err;
	snprintf(rec.msg, sizeof rec.msg, "%s", r ? r->errmsg : s->errmsg);
	pthread_mutex_unlock(&rec.mu);
}

static int rec_calls(void)
{
	int n;

	pthread_mutex_lock(&rec.mu);
	n = rec.calls;
	pthread_mutex_unlock(&rec.mu);
	return n;
}

static bool one_error(void *arg)
{
	return rec_calls() >= 1;
}

static void rec_reset(void)
{
	pthread_mutex_lock(&rec.mu);
	rec.calls = rec.err = 0;
	rec.msg[0] = '\0';
	pthread_mutex_unlock(&rec.mu);
}

/* A tcp server of model m whose handle_error records. */
static ss_server *recording_server(const ss_mixin *m, const ss_handler *h)
{
	static ss_server_ops ops;

	ops = ss_tcp_server_ops;
	ops.handle_error = record_error;
	rec_reset();
	return server(&ops, m, h);
}

/* ------------------------------------------------------------------ */
/* A sleeping handler does not stall the others                        */
/* ------------------------------------------------------------------ */

#define SLEEP 0.3
#define OTHERS 50

/* "S" sleeps SLEEP seconds in ss_sleep, then answers "slept"; anything
 * else is echoed. */
static int sleep_or_echo(ss_request *r)
{
	char buf[256];
	ssize_t n = ss_read_some(r, buf, sizeof buf);
	int rc;

	if (n > 0 && buf[0] == 'S') {
		if ((rc = ss_sleep(SLEEP)) < 0)
			return rc;
		n = ss_write_all(r, "slept", 5);
		return n < 0 ? (int)n : 0;
	}
	while (n > 0) {
		if ((n = ss_write_all(r, buf, (size_t)n)) < 0)
			break;
		n = ss_read_some(r, buf, sizeof buf);
	}
	return n < 0 ? (int)n : 0;
}

static void test_sleeper(const ss_mixin *m)
{
	static const ss_handler h = { .handle = sleep_or_echo };
	ss_server *s = server(&ss_tcp_server_ops, m, &h);
	int fd, i, served = 0;
	double t0, others, slept;
	char out[16];
	ssize_t n;
	pthread_t t;

	tu_serve_start(s, &t);
	fd = tu_connect(s);
	tu_send_all(fd, "S", 1);
	tu_wait_active(s, 1, TU_IO_TIMEOUT);
	t0 = tu_now();
	for (i = 0; i < OTHERS; i++)
		served += tu_roundtrip(s, "ping", 4, out, sizeof out) == 4;
	others = tu_now() - t0;
	is_int(served, OTHERS, "%s sleeper: %d other clients served", m->name, OTHERS);
	ok(tu_wait_readable(fd, 0) == -ETIMEDOUT,
	   "%s sleeper: they finished before the sleeper woke (%.0f ms)", m->name,
	   others * 1000);
	ok(others < SLEEP, "%s sleeper: the others took %.0f ms (< %.0f)", m->name,
	   others * 1000, SLEEP * 1000);
	n = tu_read_to_eof(fd, out, sizeof out, TU_IO_TIMEOUT);
	slept = tu_now() - t0;
	ok(n == 5 && !memcmp(out, "slept", 5), "%s sleeper: answered after its sleep",
	   m->name);
	ok(slept >= SLEEP - 0.05, "%s sleeper: slept %.0f ms", m->name, slept * 1000);
	close(fd);
	tu_serve_stop(s, &t);
	ss_server_free(s);
}

/* ------------------------------------------------------------------ */
/* The handler's timeout inside coroutines; a failing handler          */
/* ------------------------------------------------------------------ */

static void test_timeout(const ss_mixin *m)
{
	static const ss_handler h = { .handle = tu_echo, .timeout = 0.2 };
	ss_server *s = recording_server(m, &h);
	double t0, took;
	pthread_t t;
	char b;
	int fd;

	tu_serve_start(s, &t);
	t0 = tu_now();
	fd = tu_connect(s);
	ok(tu_wait_until(one_error, NULL, TU_IO_TIMEOUT), "%s timeout: handle_error called",
	   m->name);
	took = tu_now() - t0;
	ok(took >= 0.15 && took < 2.0, "%s timeout: after %.0f ms (0.2 s asked)", m->name,
	   took * 1000);
	is_int(rec.err, -ETIMEDOUT, "%s timeout: the error is -ETIMEDOUT", m->name);
	ok(strstr(rec.msg, "timed out") != NULL, "%s timeout: the message names it: '%s'",
	   m->name, rec.msg);
	ok(tu_read_to_eof(fd, &b, 1, TU_IO_TIMEOUT) == 0, "%s timeout: client sees EOF",
	   m->name);
	close(fd);
	tu_wait_active(s, 0, TU_IO_TIMEOUT);
	is_int(rec_calls(), 1, "%s timeout: handle_error called once", m->name);
	tu_serve_stop(s, &t);
	ss_server_free(s);
}

static int failing(ss_request *r)
{
	char buf[16];

	if (ss_read_some(r, buf, sizeof buf) < 0)
		return -EIO;
	return ss_request_error(r, -EPROTO, "bad command");
}

static void test_failure(const ss_mixin *m)
{
	static const ss_handler h = { .handle = failing };
	ss_server *s = recording_server(m, &h);
	char out[16];
	pthread_t t;

	tu_serve_start(s, &t);
	is_int(tu_roundtrip(s, "x", 1, out, sizeof out), 0,
	       "%s failure: the client sees the connection closed", m->name);
	tu_wait_until(one_error, NULL, TU_IO_TIMEOUT);
	tu_wait_active(s, 0, TU_IO_TIMEOUT);
	is_int(rec_calls(), 1, "%s failure: handle_error called once", m->name);
	is_int(rec.err, -EPROTO, "%s failure: with the handler's error", m->name);
	is_str(rec.msg, "bad command", "%s failure: and its message", m->name);
	tu_serve_stop(s, &t);
	ss_server_free(s);
}

/* ------------------------------------------------------------------ */
/* Stack overflow                                                      */
/* ------------------------------------------------------------------ */

/* Recursion that no compiler turns into a loop: 1 KiB a frame. */
static int deep(volatile char *up, int n)
{
	volatile char frame[1024];

	frame[0] = (char)n;
	frame[1] = up ? up[0] : 0;
	return n > 0 ? deep(frame, n - 1) + frame[1] : 0;
}

static int overflow(ss_request *r)
{
	return deep(NULL, 1 << 20) == 42 ? -EIO : 0;
}

/* In a child (single-threaded, before any test thread exists): a
 * coroutine that overflows its stack must die on the guard page. */
static void test_overflow(void)
{
	static const ss_handler h = { .handle = overflow };
	int status, null;
	pid_t pid;

	pid = fork();
	if (pid < 0)
		tap_bail("fork: %s", strerror(errno));
	if (pid == 0) {
		ss_server *s = ss_coroutine_tcp_server_new("127.0.0.1:0", &h, NULL);

		alarm(20);
		null = open("/dev/null", O_WRONLY);
		dup2(null, 2);
		if (!s || tu_connect_try(s) < 0)
			_exit(3);
		ss_server_handle_request(s, 5.0);
		_exit(0);	/* survived: the overflow went unnoticed */
	}
	waitpid(pid, &status, 0);
	if (TU_SANITIZED)
		ok(!(WIFEXITED(status) && WEXITSTATUS(status) == 0) &&
		   !(WIFEXITED(status) && WEXITSTATUS(status) == 3),
		   "overflow: the sanitizer caught the stack overflow (status %#x)", status);
	else
		ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV,
		   "overflow: the coroutine died of SIGSEGV on its guard page (status %#x)",
		   status);
}

/* ------------------------------------------------------------------ */
/* An idle connection holds no stream buffer                           */
/* ------------------------------------------------------------------ */

static ss_request *watched;	/* only touched on the one loop thread */

/* "W": become the watched request, then echo.  "Q": say whether the
 * watched request, waiting for input, still holds its buffers. */
static int watch_or_query(ss_request *r)
{
	const void *p;
	char line[8];
	ssize_t n;

	if (ss_read_line(r, line, sizeof line) != 2)
		return -EPROTO;
	if (line[0] == 'Q') {
		ss_write_all(r, watched && !ss__rq(watched)->rbuf ? "r0" : "r1", 2);
		ss_write_all(r, watched && !ss__rq(watched)->wbuf ? "w0" : "w1", 2);
		return 0;
	}
	watched = r;
	ss_write_all(r, "ok", 2);
	while ((n = ss_read_view(r, &p, SIZE_MAX)) > 0)
		if ((n = ss_write_all(r, p, (size_t)n)) < 0)
			break;
	watched = NULL;
	return n < 0 ? (int)n : 0;
}

static void test_idle_buffers(void)
{
	static const ss_handler h = { .handle = watch_or_query };
	ss_server *s = server(&ss_tcp_server_ops, &ss_coroutine_mixin, &h);
	char out[16];
	pthread_t t;
	ssize_t n;
	int fd;

	tu_serve_start(s, &t);
	fd = tu_connect(s);
	tu_send_all(fd, "W\n", 2);
	n = tu_read_exact(fd, out, 2, TU_IO_TIMEOUT);
	ok(n == 2 && !memcmp(out, "ok", 2), "idle buffers: the watched request answered");
	n = tu_roundtrip(s, "Q\n", 2, out, sizeof out - 1);
	out[n > 0 ? n : 0] = '\0';
	is_str(out, "r0w0", "idle buffers: a coroutine waiting for input holds neither "
	       "its reader's nor its writer's buffer");
	tu_send_all(fd, "again", 5);
	n = tu_read_exact(fd, out, 5, TU_IO_TIMEOUT);
	ok(n == 5 && !memcmp(out, "again", 5), "idle buffers: it takes them again for the next input");
	close(fd);
	tu_serve_stop(s, &t);
	ss_server_free(s);
}

/* ------------------------------------------------------------------ */
/* handle_request under every model                                    */
/* ------------------------------------------------------------------ */

enum {
	HR_INLINE,	/* the handler ran on the thread of handle_request */
	HR_ENDED,	/* the handler has returned (set just before) */
	HR_N
};

static atomic_int *hr;		/* shared memory: forking runs it in a child */
static pid_t hr_pid;
static pthread_t hr_thread;	/* the caller of handle_request */

/* Echo one line, then wait for the client's EOF (so a coroutine has to
 * yield to its loop at least once), marking where it ran and that it
 * ended. */
static int line_then_eof(ss_request *r)
{
	char line[64], b;
	ssize_t n;

	atomic_store(&hr[HR_INLINE], getpid() == hr_pid &&
				     pthread_equal(pthread_self(), hr_thread));
	n = ss_read_line(r, line, sizeof line);
	if (n > 0 && (n = ss_write_all(r, line, (size_t)n)) > 0)
		n = ss_read_some(r, &b, 1);
	atomic_store(&hr[HR_ENDED], 1);
	return n < 0 ? (int)n : 0;
}

/* The models whose process_request hands the request to another thread
 * or process; every other model runs a request that handle_request took
 * in the caller, as sync does. */
static bool starts_elsewhere(const ss_mixin *m)
{
	return m == &ss_threading_mixin || m == &ss_forking_mixin ||
	       m == &ss_pool_mixin;
}

/* One handle_request(2.0) with a client waiting returns 0 with the
 * request handled; the next one, with no client, times out. */
static void test_handle_request(const ss_mixin *m)
{
	static const ss_handler h = { .handle = line_then_eof };
	ss_server *s = server(&ss_tcp_server_ops, m, &h);
	int fd = tu_connect(s), rc, ended;
	char out[16];
	ssize_t n;

	atomic_store(&hr[HR_INLINE], 0);
	atomic_store(&hr[HR_ENDED], 0);
	hr_pid = getpid();
	hr_thread = pthread_self();
	tu_send_all(fd, "hello\n", 6);
	shutdown(fd, SHUT_WR);
	rc = ss_server_handle_request(s, 2.0);
	ended = atomic_load(&hr[HR_ENDED]);
	is_int(rc, 0, "%s handle_request: 0 for a waiting client", m->name);
	n = tu_read_to_eof(fd, out, sizeof out, 2.0);
	ok(n == 6 && !memcmp(out, "hello\n", 6), "%s handle_request: the client has "
	   "its echo and EOF (%zd)", m->name, n);
	ok(atomic_load(&hr[HR_ENDED]), "%s handle_request: the handler ran to its end",
	   m->name);
	is_int(atomic_load(&hr[HR_INLINE]), !starts_elsewhere(m),
	       "%s handle_request: the handler ran %s", m->name,
	       starts_elsewhere(m) ? "elsewhere" : "in the caller");
	if (starts_elsewhere(m))
		tap_skip(1, "%s starts the request elsewhere: it may end later", m->name);
	else
		ok(ended, "%s handle_request: the handler had ended when it returned",
		   m->name);
	close(fd);
	rc = ss_server_handle_request(s, 0.05);
	is_int(rc, -ETIMEDOUT, "%s handle_request: then -ETIMEDOUT with no client",
	       m->name);
	ss_server_free(s);
	ok(tu_no_children(), "%s handle_request: no child left", m->name);
}

/* Read a line, ask for shutdown, then wait for input that never comes. */
static int shutdown_then_wait(ss_request *r)
{
	char line[64];
	ssize_t n = ss_read_line(r, line, sizeof line);

	ss_server_shutdown(r->server);
	if (n > 0)
		n = ss_read_some(r, line, sizeof line);
	return n < 0 ? (int)n : 0;
}

/* A shutdown while handle_request runs a coroutine's request stops it
 * (-ECANCELED) instead of waiting for the request; close cuts the request
 * after its grace. */
static void test_handle_request_shutdown(void)
{
	static const ss_handler h = { .handle = shutdown_then_wait };
	ss_server *s = recording_server(&ss_coroutine_mixin, &h);
	int fd = tu_connect(s), rc;
	double t0 = tu_now(), ms;
	char b;

	tu_send_all(fd, "x\n", 2);
	rc = ss_server_handle_request(s, 2.0);
	is_int(rc, -ECANCELED, "coroutine handle_request: -ECANCELED after a shutdown "
	       "from the handler");
	ok(tu_now() - t0 < 1.0, "coroutine handle_request: returned at once");
	is_int(ss_server_active_count(s), 1, "coroutine handle_request: the request is "
	       "still in flight");
	ms = tu_close_within_ms(s, 0.1);
	ok(ms < 2000, "coroutine handle_request: close_within(0.1) cut it in %.0f ms", ms);
	ok(tu_unanswered(tu_read_to_eof(fd, &b, 1, TU_IO_TIMEOUT)),
	   "coroutine handle_request: the client saw the cut");
	is_int(rec_calls(), 1, "coroutine handle_request: the cut reported once");
	close(fd);
	ss_server_free(s);
}

int main(void)
{
	size_t m;

	tu_init();
	test_overflow();
	test_many();
	test_idle_buffers();
	for (m = 0; m < NMODELS; m++) {
		test_sleeper(models[m]);
		test_timeout(models[m]);
		test_failure(models[m]);
	}
	hr = tu_shared_counters(HR_N);
	for (m = 0; ss_mixin_at(m); m++)
		test_handle_request(ss_mixin_at(m));
	test_handle_request_shutdown();
	return tap_done();
}
