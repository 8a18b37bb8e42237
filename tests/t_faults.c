/*
 * t_faults.c - failure paths, injected through the ss__sys table and
 * real: accept4 failing with ECONNABORTED (retried) and EMFILE (backed
 * off without spinning, reported once, resumed: under threading, pool,
 * coroutine and threads+coroutine, whose worker threads accept in loops
 * of their own; prefork's workers run the core loop in processes the
 * schedule does not reach), one EMFILE episode reported exactly once in
 * the same words under sync, threading and threads+coroutine with 4
 * workers, a real EMFILE in a
 * child with a low RLIMIT_NOFILE, send/recv interrupted (EINTR) and
 * short, thread and process starts failing, clients resetting
 * mid-stream, and writes to a closed peer not raising SIGPIPE.
 */
#include <socketserver.h>
#include "tap.h"
#include "faultutil.h"
#include "testutil.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define ECHO_LEN (200u * 1024u)

/* ------------------------------------------------------------------ */
/* The handle_error log                                                */
/* ------------------------------------------------------------------ */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static int log_count;		/* all calls */
static int log_server;		/* calls with request == NULL */
static int log_err;
static char log_msg[SS_ERRMSG_MAX];

static void log_clear(void)
{
	pthread_mutex_lock(&log_mu);
	log_count = log_server = log_err = 0;
	log_msg[0] = '\0';
	pthread_mutex_unlock(&log_mu);
}

/* handle_error override: count and keep the last message. */
static void record_error(ss_server *s, ss_request *r, int err)
{
	pthread_mutex_lock(&log_mu);
	log_count++;
	log_server += r == NULL;
	log_err = err;
	snprintf(log_msg, sizeof log_msg, "%s", r ? r->errmsg : s->errmsg);
	pthread_mutex_unlock(&log_mu);
}

/* The number of calls; the last error and message if wanted. */
static int log_get(int *server_calls, int *err, char *msg)
{
	int n;

	pthread_mutex_lock(&log_mu);
	n = log_count;
	if (server_calls)
		*server_calls = log_server;
	if (err)
		*err = log_err;
	if (msg)
		memcpy(msg, log_msg, sizeof log_msg);
	pthread_mutex_unlock(&log_mu);
	return n;
}

static bool log_nonempty(void *arg)
{
	return log_get(NULL, NULL, NULL) > 0;
}

/* ------------------------------------------------------------------ */
/* Servers and clients                                                 */
/* ------------------------------------------------------------------ */

/* Echo until EOF. */
static int h_echo(ss_request *r)
{
	char buf[8192];
	ssize_t n;

	while ((n = ss_read_some(r, buf, sizeof buf)) > 0)
		if (ss_write_all(r, buf, (size_t)n) < 0)
			return (int)n;
	return (int)n;
}

static const ss_handler echo = { .handle = h_echo };
static ss_server_ops tcp_ops;

/* A server and the thread serving it. */
struct srv {
	ss_server *s;
	pthread_t th;
};

/* A TCP server of mixin m for h on an ephemeral port, served in a thread. */
static struct srv up(const ss_mixin *m, const ss_handler *h)
{
	struct srv v = { .s = tu_server(&tcp_ops, m, h, NULL) };

	tu_serve_start(v.s, &v.th);
	return v;
}

static void down(struct srv *v)
{
	tu_serve_stop(v->s, &v->th);
	ss_server_free(v->s);
}

/* Client fd: "ping\n" sent and half-closed. */
static int ping(ss_server *s)
{
	int fd = tu_connect(s);

	tu_send_all(fd, "ping\n", 5);
	shutdown(fd, SHUT_WR);
	return fd;
}

/* Did the echo of ping() come back on fd? */
static bool ponged(int fd)
{
	char buf[8];
	ssize_t n = tu_read_to_eof(fd, buf, sizeof buf, TU_IO_TIMEOUT);

	return n == 5 && !memcmp(buf, "ping\n", 5);
}

/* One short echo round trip on a new connection: true when it worked. */
static bool roundtrip(ss_server *s)
{
	int fd = ping(s);
	bool pass = ponged(fd);

	close(fd);
	return pass;
}

/* Send ECHO_LEN bytes of pattern through the echo server and check they
 * come back whole and in order. */
static void echo_big(ss_server *s, const char *what)
{
	unsigned char *out = malloc(ECHO_LEN), *in = malloc(ECHO_LEN + 1);
	ssize_t n;

	fu_fill(out, ECHO_LEN, 0);
	n = tu_roundtrip(s, out, ECHO_LEN, (char *)in, ECHO_LEN + 1);
	is_int(n, ECHO_LEN, "%s: 200 KiB echo arrives whole", what);
	is_int(n > 0 ? fu_check(in, (size_t)n, 0) : 0, n > 0 ? n : 0,
	       "%s: and in order", what);
	free(in);
	free(out);
}

/* ------------------------------------------------------------------ */
/* accept4                                                             */
/* ------------------------------------------------------------------ */

static void test_connaborted(void)
{
	struct srv v = up(&ss_threading_mixin, &echo);

	fu_fail_next(FU_ACCEPT4, 2, ECONNABORTED);
	ok(roundtrip(v.s), "accept4 ECONNABORTED twice: the client is still served");
	is_int(fu_failures(FU_ACCEPT4), 2, "both failures were injected");
	ok(fu_calls(FU_ACCEPT4) >= 3, "accept4 retried (%ld calls)",
	   fu_calls(FU_ACCEPT4));
	ok(roundtrip(v.s), "the server keeps serving");
	down(&v);
}

static bool accept_called(void *arg)
{
	return fu_calls(FU_ACCEPT4) > *(long *)arg;
}

/* accept4 fails with EMFILE until told otherwise: under model m the
 * server backs off instead of spinning, reports the episode, and serves
 * the waiting client once descriptors are back.  threads+coroutine's
 * workers run accept loops of their own, the other models the core's. */
static void test_emfile_injected(const ss_mixin *m)
{
	struct srv v;
	long before, c0, c1;
	char msg[SS_ERRMSG_MAX];
	int fd, server_calls = 0;
	const char *n = m->name;

	v.s = tu_server(&tcp_ops, m, &echo, NULL);
	v.s->workers = 2;
	tu_serve_start(v.s, &v.th);
	before = fu_calls(FU_ACCEPT4);
	log_clear();
	fu_fail_next(FU_ACCEPT4, -1, EMFILE);
	fd = ping(v.s);		/* queued: the listener stays readable */
	ok(tu_wait_until(accept_called, &before, 3.0), "%s: accept4 is tried", n);
	c0 = fu_calls(FU_ACCEPT4);
	poll(NULL, 0, 300);	/* the measuring window */
	c1 = fu_calls(FU_ACCEPT4);
	ok(c1 - c0 < 30, "%s EMFILE: no spinning (%ld accept4 calls in 300 ms)", n,
	   c1 - c0);
	fu_fail_next(FU_ACCEPT4, 0, 0);
	ok(ponged(fd), "%s EMFILE gone: the pending client is served", n);
	close(fd);
	ok(roundtrip(v.s), "%s: and the server keeps serving", n);
	log_get(&server_calls, NULL, msg);
	ok(server_calls >= 1 && server_calls <= 3,
	   "%s: handle_error(request = NULL) reported the episode, not every "
	   "attempt (%d calls)", n, server_calls);
	ok(strstr(msg, "Too many open files") != NULL,
	   "%s: server->errmsg mentions it: '%s'", n, msg);
	down(&v);
}

#define EPISODE_CLIENTS 8

/* What every model reports once per EMFILE episode (the core's words). */
#define EMFILE_REPORT \
	"accept: Too many open files (pausing accepts, retrying for as long as it lasts)"

/* One EMFILE episode under model m, with 4 workers where m has workers:
 * clients keep coming while accept4 fails, so every worker that watches
 * the listener runs into it; the server reports the episode exactly once,
 * in the same words under every model, and serves every client once the
 * fault is gone. */
static void test_emfile_episode(const ss_mixin *m)
{
	struct srv v;
	char msg[SS_ERRMSG_MAX];
	int fd[EPISODE_CLIENTS], i, server_calls = 0, served = 0, tried = 0;
	const char *n = m->name;
	long before;

	v.s = tu_server(&tcp_ops, m, &echo, NULL);
	v.s->workers = 4;
	v.s->accept_backoff_max = 0.1;	/* the episode lasts well under 1 s */
	tu_serve_start(v.s, &v.th);
	ok(roundtrip(v.s), "%s episode: serving", n);
	log_clear();
	fu_fail_next(FU_ACCEPT4, -1, EMFILE);
	for (i = 0; i < EPISODE_CLIENTS; i++) {
		before = fu_calls(FU_ACCEPT4);
		fd[i] = ping(v.s);
		tried += tu_wait_until(accept_called, &before, 3.0);
	}
	is_int(tried, EPISODE_CLIENTS, "%s episode: accept4 tried after each of %d clients",
	       n, EPISODE_CLIENTS);
	fu_fail_next(FU_ACCEPT4, 0, 0);
	for (i = 0; i < EPISODE_CLIENTS; i++) {
		served += ponged(fd[i]);
		close(fd[i]);
	}
	is_int(served, EPISODE_CLIENTS, "%s episode: accepting resumed, every client served",
	       n);
	log_get(&server_calls, NULL, msg);
	is_int(server_calls, 1, "%s episode: handle_error(request = NULL) once", n);
	is_str(msg, EMFILE_REPORT, "%s episode: in the core's words", n);
	down(&v);
}

/* ------------------------------------------------------------------ */
/* A real EMFILE, in a child                                           */
/* ------------------------------------------------------------------ */

enum {
	RE_SETUP = 1,		/* limit or stdout redirection failed */
	RE_NO_EMFILE = 2,	/* never ran out */
	RE_CPU = 4,		/* spun */
	RE_SERVED1 = 8,		/* first client not served */
	RE_SERVED2 = 16,	/* second client not served */
	RE_REPORT = 32,		/* handle_error not told */
};

struct real_emfile {
	int flags;
	long cpu_ms;
	long accepts;
};

/* CPU time of the process, ms. */
static long cpu_ms(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec * 1000L + ru.ru_utime.tv_usec / 1000 +
	       ru.ru_stime.tv_sec * 1000L + ru.ru_stime.tv_usec / 1000;
}

/* Make two client sockets, fill the descriptor table, then connect the
 * clients (connect needs no new fd) and send them a ping each: their
 * connections wait in the backlog.  Returns the number of filler fds in
 * fill[], and the clients in cl[]. */
static int exhaust(ss_server *s, int *fill, int max, int cl[2])
{
	const ss_addr *a = &s->address;
	int n = 0;

	for (int i = 0; i < 2; i++)
		cl[i] = socket(a->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	while (n < max && (fill[n] = dup(STDOUT_FILENO)) >= 0)
		n++;
	for (int i = 0; i < 2; i++) {
		if (connect(cl[i], (const struct sockaddr *)&a->ss, a->len) < 0)
			continue;	/* ponged() then fails */
		tu_send_all(cl[i], "ping\n", 5);
		shutdown(cl[i], SHUT_WR);
	}
	return n;
}

/* Out of descriptors? */
static bool table_full(void)
{
	int fd = dup(STDOUT_FILENO);

	if (fd >= 0) {
		close(fd);
		return false;
	}
	return errno == EMFILE;
}

/* The child's whole test: returns what it saw. */
static struct real_emfile real_emfile_child(void)
{
	struct real_emfile res = { 0 };
	struct rlimit rl = { .rlim_cur = 48, .rlim_max = 48 };
	int fill[64], cl[2], n, server_calls = 0;
	long before = 0, c0;
	char msg[SS_ERRMSG_MAX];
	struct srv v;

	/* stdout to stderr: nothing here may print TAP (a bail-out
	 * message still shows, as a log line) */
	if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0 ||
	    setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		res.flags = RE_SETUP;
		return res;
	}
	log_clear();
	v = up(&ss_sync_mixin, &echo);
	n = exhaust(v.s, fill, 63, cl);
	if (!table_full())
		res.flags |= RE_NO_EMFILE;
	tu_wait_until(accept_called, &before, 3.0);
	c0 = cpu_ms();
	poll(NULL, 0, 300);
	res.cpu_ms = cpu_ms() - c0;
	res.accepts = fu_calls(FU_ACCEPT4);
	if (res.cpu_ms > 100)
		res.flags |= RE_CPU;
	for (int i = 0; i < 10 && n > 0; i++)
		close(fill[--n]);
	res.flags |= ponged(cl[0]) ? 0 : RE_SERVED1;
	res.flags |= ponged(cl[1]) ? 0 : RE_SERVED2;
	log_get(&server_calls, NULL, msg);
	if (server_calls < 1 || !strstr(msg, "Too many open files"))
		res.flags |= RE_REPORT;
	down(&v);
	return res;
}

static void test_emfile_real(void)
{
	struct real_emfile res = { .flags = RE_SETUP };
	int p[2], status = 0;
	pid_t pid;

	if (pipe(p) < 0)
		tap_bail("pipe: %s", strerror(errno));
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		res = real_emfile_child();
		_exit(write(p[1], &res, sizeof res) == sizeof res ? 0 : 2);
	}
	close(p[1]);
	if (read(p[0], &res, sizeof res) != sizeof res)
		res.flags = RE_SETUP;
	close(p[0]);
	waitpid(pid, &status, 0);
	is_int(status, 0, "real EMFILE: the child ran to its end");
	ok(!(res.flags & RE_SETUP), "real EMFILE: set up");
	ok(!(res.flags & RE_NO_EMFILE), "real EMFILE: the table is full");
	ok(!(res.flags & RE_CPU), "real EMFILE: the server does not spin "
	   "(%ld ms CPU in 300 ms, %ld accept4 calls)", res.cpu_ms, res.accepts);
	ok(!(res.flags & RE_SERVED1), "real EMFILE: fds freed, first client served");
	ok(!(res.flags & RE_SERVED2), "real EMFILE: second client served");
	ok(!(res.flags & RE_REPORT), "real EMFILE: handle_error said "
	   "'Too many open files'");
}

/* ------------------------------------------------------------------ */
/* send / recv interrupted and short                                   */
/* ------------------------------------------------------------------ */

static void test_send_eintr_short(void)
{
	struct srv v = up(&ss_threading_mixin, &echo);

	log_clear();
	fu_fail_every(FU_SEND, 2, EINTR);
	fu_cap_len(FU_SEND, 7);
	echo_big(v.s, "send EINTR every other call, 7 bytes a call");
	ok(fu_failures(FU_SEND) > 1000, "send was interrupted %ld times",
	   fu_failures(FU_SEND));
	fu_fail_every(FU_SEND, 0, 0);
	fu_cap_len(FU_SEND, 0);
	down(&v);
	is_int(log_get(NULL, NULL, NULL), 0, "no handle_error");
}

static void test_recv_eintr(void)
{
	struct srv v = up(&ss_threading_mixin, &echo);

	log_clear();
	fu_fail_every(FU_RECV, 3, EINTR);
	fu_cap_len(FU_RECV, 100);
	fu_fail_every(FU_POLL, 5, EINTR);
	echo_big(v.s, "recv EINTR every third call, 100 bytes a call");
	ok(fu_failures(FU_RECV) > 100, "recv was interrupted %ld times",
	   fu_failures(FU_RECV));
	fu_fail_every(FU_RECV, 0, 0);
	fu_cap_len(FU_RECV, 0);
	fu_fail_every(FU_POLL, 0, 0);
	down(&v);
	is_int(log_get(NULL, NULL, NULL), 0, "no handle_error");
}

/* ------------------------------------------------------------------ */
/* Thread and process starts failing                                   */
/* ------------------------------------------------------------------ */

/* The connection ends without a byte of reply (EOF or reset). */
static bool closed_unserved(int fd)
{
	char buf[8];
	ssize_t n = recv(fd, buf, sizeof buf, 0);

	return n == 0 || (n < 0 && errno == ECONNRESET);
}

/* The next start (call c) of mixin m fails with EAGAIN. */
static void start_fails(const ss_mixin *m, enum fu_call c, const char *want)
{
	struct srv v = up(m, &echo);
	char msg[SS_ERRMSG_MAX];
	int fd, err = 0, n;

	log_clear();
	fu_fail_next(c, 1, EAGAIN);
	fd = ping(v.s);
	ok(closed_unserved(fd), "%s: %s fails: the client sees its connection "
	   "closed", m->name, want);
	close(fd);
	tu_wait_until(log_nonempty, NULL, 3.0);
	n = log_get(NULL, &err, msg);
	ok(roundtrip(v.s), "%s: the next client is served", m->name);
	is_int(n, 1, "%s: handle_error called once", m->name);
	is_int(err, -EAGAIN, "%s: with -EAGAIN", m->name);
	ok(strstr(msg, want) && strstr(msg, "Resource temporarily unavailable"),
	   "%s: message names the start: '%s'", m->name, msg);
	is_int(fu_failures(c), 1, "%s: one start failed", m->name);
	down(&v);
}

/* ------------------------------------------------------------------ */
/* Clients that reset                                                  */
/* ------------------------------------------------------------------ */

/* Send RST instead of FIN on close. */
static void reset_close(int fd)
{
	struct linger l = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
	close(fd);
}

/* Say "go", then read much more than the client sends. */
static int read_big(ss_request *r)
{
	char *buf = malloc(1 << 20);
	ssize_t n = -ENOMEM;

	if (buf && ss_write_all(r, "go", 2) == 2 && ss_flush(r) == 0)
		n = ss_read_exact(r, buf, 1 << 20);
	free(buf);
	return n < 0 ? (int)n : 0;
}

/* Write until the peer is gone (at most 256 MiB). */
static int write_big(ss_request *r)
{
	static const char buf[65536];

	for (int i = 0; i < 4096; i++) {
		ssize_t n = ss_write_all(r, buf, sizeof buf);

		if (n < 0)
			return (int)n;
	}
	return 0;
}

/* First line "read\n" or "write\n" picks a big transfer; anything else
 * is echoed with the rest of the stream. */
static int h_mode(ss_request *r)
{
	char line[64];
	ssize_t n = ss_read_line(r, line, sizeof line);

	if (n <= 0)
		return (int)n;
	if (!strcmp(line, "read\n"))
		return read_big(r);
	if (!strcmp(line, "write\n"))
		return write_big(r);
	if (ss_write_all(r, line, (size_t)n) < 0)
		return -EIO;
	return h_echo(r);
}

static const ss_handler mode = { .handle = h_mode };

static void test_reset_reading(void)
{
	struct srv v = up(&ss_sync_mixin, &mode);
	char buf[1000] = { 0 }, msg[SS_ERRMSG_MAX];
	int fd = tu_connect(v.s), n;

	log_clear();
	tu_send_all(fd, "read\n", 5);
	n = (int)recv(fd, buf, 2, MSG_WAITALL);
	ok(n == 2, "the handler is reading");
	tu_send_all(fd, buf, sizeof buf);
	reset_close(fd);
	ok(roundtrip(v.s), "reset while the handler reads: the next client "
	   "is served");
	n = log_get(NULL, NULL, msg);
	ok(n <= 1, "handle_error at most once (%d: '%s')", n, msg);
	down(&v);
}

static void test_reset_writing(void)
{
	struct srv v = up(&ss_sync_mixin, &mode);
	char *buf = malloc(65536), msg[SS_ERRMSG_MAX];
	int fd = tu_connect(v.s), n, err = 0;

	log_clear();
	tu_send_all(fd, "write\n", 6);
	n = (int)recv(fd, buf, 65536, MSG_WAITALL);
	ok(n == 65536, "the handler is writing (%d bytes read)", n);
	reset_close(fd);
	ok(roundtrip(v.s), "reset while the handler writes: the test "
	   "process lives on (no SIGPIPE), the next client is served");
	n = log_get(NULL, &err, msg);
	is_int(n, 1, "handle_error once");
	ok(err == -ECONNRESET || err == -EPIPE, "with ECONNRESET or EPIPE "
	   "(%d: '%s')", err, msg);
	free(buf);
	down(&v);
}

/* Wait for the client's EOF, then write to it again and again. */
static int h_write_after_eof(ss_request *r)
{
	char c;
	ssize_t n = ss_read_some(r, &c, 1);

	if (n != 0)
		return n < 0 ? (int)n : -EPROTO;
	for (int i = 0; i < 100; i++) {
		if ((n = ss_write_all(r, "data\n", 5)) < 0)
			return (int)n;
		if ((n = ss_flush(r)) < 0)
			return (int)n;
	}
	return 0;
}

static void test_sigpipe(void)
{
	static const ss_handler h = { .handle = h_write_after_eof };
	struct srv v = up(&ss_threading_mixin, &h);
	struct sigaction sa;
	int err = 0;

	log_clear();
	close(tu_connect(v.s));
	ok(tu_wait_until(log_nonempty, NULL, 3.0), "writes to a closed peer "
	   "fail and the test process is alive (no SIGPIPE)");
	log_get(NULL, &err, NULL);
	ok(err == -EPIPE || err == -ECONNRESET, "with EPIPE or ECONNRESET (%d)",
	   err);
	is_int(fu_sends_without_nosignal(), 0, "every send used MSG_NOSIGNAL");
	sigaction(SIGPIPE, NULL, &sa);
	ok(sa.sa_handler == SIG_DFL, "SIGPIPE still has its default action "
	   "(not ignored behind our back)");
	down(&v);
}

int main(void)
{
	tcp_ops = ss_tcp_server_ops;
	tcp_ops.handle_error = record_error;
	fu_install();
	test_emfile_real();	/* forks: first, while no thread runs */
	test_connaborted();
	test_emfile_injected(&ss_threading_mixin);
	test_emfile_injected(&ss_pool_mixin);
	test_emfile_injected(&ss_coroutine_mixin);
	test_emfile_injected(&ss_threads_coroutine_mixin);
	test_emfile_episode(&ss_sync_mixin);
	test_emfile_episode(&ss_threading_mixin);
	test_emfile_episode(&ss_threads_coroutine_mixin);
	test_send_eintr_short();
	test_recv_eintr();
	start_fails(&ss_threading_mixin, FU_PTHREAD_CREATE, "start thread");
	start_fails(&ss_forking_mixin, FU_FORK, "fork");
	test_reset_reading();
	test_reset_writing();
	test_sigpipe();
	fu_reset();
	return tap_done();
}
