/*
 * t_examples.c - runs the built example programs as a new user would:
 * every echo server kind under every model answers echo_client and stops
 * cleanly on SIGTERM; -h, bad and busy addresses; 1 MiB through a TCP
 * echo; SIGTERM with an idle client connected.
 *
 * The programs are found next to this one: dirname(/proc/self/exe)/../
 * examples/.  Servers listen on ephemeral ports or in a private temporary
 * directory, so copies of this test can run side by side; only processes
 * started here are signalled.  Waits are polls with deadlines, no sleeps.
 */
#include <socketserver.h>
#include "tap.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DEADLINE_MS 10000	/* longest wait for anything */

static char tmpdir[] = "/tmp/t_examples.XXXXXX";

static const char *const kinds[] = { "tcp", "udp", "unix_stream", "unix_dgram" };
static const char *const models[] = { "sync", "threading", "forking" };

/* ------------------------------------------------------------------ */
/* Starting the examples                                               */
/* ------------------------------------------------------------------ */

/* Start the example program argv[0] (a name in BUILD/examples) as
 * tu_spawn does, stdin from /dev/null. */
static pid_t spawn(const char *argv[], int *out, int *err)
{
	return tu_spawn(tu_example_path(argv[0]), argv, NULL, out, err);
}

/* ------------------------------------------------------------------ */
/* Servers and the client                                              */
/* ------------------------------------------------------------------ */

/* A running echo server. */
struct server {
	pid_t pid;
	int out;			/* its stdout */
	int err;			/* its stderr */
	char addr[SS_ADDRSTRLEN];	/* from "listening on ADDRESS" */
	char errtext[2048];		/* its stderr, read by stop_server */
};

/*
 * Start echo_<kind> [-m model] [-g grace] address and read its
 * "listening on ADDRESS" line.  Returns true when it is listening; on
 * failure the process is gone.
 */
static bool start_server(struct server *s, const char *kind, const char *model,
			 const char *flag, const char *value, const char *address)
{
	const char *argv[8];
	char prog[32], line[256];
	int n = 0;

	snprintf(prog, sizeof prog, "echo_%s", kind);
	argv[n++] = prog;
	if (model) {
		argv[n++] = "-m";
		argv[n++] = model;
	}
	if (flag) {
		argv[n++] = flag;
		argv[n++] = value;
	}
	argv[n++] = address;
	argv[n] = NULL;
	s->errtext[0] = '\0';
	s->pid = spawn(argv, &s->out, &s->err);
	if (s->pid < 0)
		return false;
	if (tu_read_until(s->out, line, sizeof line, true, DEADLINE_MS) > 0 &&
	    sscanf(line, "listening on %127s", s->addr) == 1)
		return true;
	tap_diag("%s %s: no 'listening on' line (got '%s')", prog, address, line);
	kill(s->pid, SIGKILL);
	tu_wait_exit(s->pid, DEADLINE_MS, NULL);
	close(s->out);
	close(s->err);
	return false;
}

/* SIGTERM the server and wait up to timeout_ms for it: its exit status,
 * or -1 (it is then killed). */
static int stop_server(struct server *s, int timeout_ms, double *elapsed_ms)
{
	int code;

	kill(s->pid, SIGTERM);
	code = tu_wait_exit(s->pid, timeout_ms, elapsed_ms);
	close(s->out);
	tu_read_until(s->err, s->errtext, sizeof s->errtext, false, DEADLINE_MS);
	close(s->err);
	return code;
}

/*
 * Run echo_client -t kind address msg and collect its stdout in reply.
 * Returns its exit status, or -1.
 */
static int run_client(const char *kind, const char *address, const char *msg,
		      char *reply, size_t size)
{
	const char *argv[] = { "echo_client", "-t", kind, address, msg, NULL };
	int out, code;
	pid_t pid;

	reply[0] = '\0';
	pid = spawn(argv, &out, NULL);
	if (pid < 0)
		return -1;
	if (tu_read_until(out, reply, size, false, DEADLINE_MS) < 0)
		tap_diag("echo_client %s: no EOF on its stdout in time", address);
	close(out);
	code = tu_wait_exit(pid, DEADLINE_MS, NULL);
	return code;
}

/* ------------------------------------------------------------------ */
/* The tests                                                           */
/* ------------------------------------------------------------------ */

/*
 * One kind under one model: it listens, echo_client gets its message
 * back, SIGTERM makes it exit 0, and a unix socket file is removed.
 */
static void test_echo(const char *kind, const char *model)
{
	bool is_unix = strncmp(kind, "unix", 4) == 0;
	char address[PATH_MAX], msg[128], want[130], reply[256];
	struct server s;
	bool started, listening;
	int code;

	if (is_unix)
		snprintf(address, sizeof address, "%s/%s-%s.sock", tmpdir, kind, model);
	else
		snprintf(address, sizeof address, "127.0.0.1:0");
	started = start_server(&s, kind, model, NULL, NULL, address);
	listening = started && (is_unix ? strcmp(s.addr, address) == 0 :
				strncmp(s.addr, "127.0.0.1:", 10) == 0 &&
				strcmp(s.addr, "127.0.0.1:0") != 0);
	if (started && !listening)
		tap_diag("printed address '%s' for '%s'", s.addr, address);
	if (!ok(listening, "echo_%s -m %s %s: listening on the real address",
		kind, model, address)) {
		tap_skip(is_unix ? 3 : 2, "echo_%s -m %s did not start", kind, model);
		if (started)
			stop_server(&s, DEADLINE_MS, NULL);
		unlink(address);
		return;
	}

	snprintf(msg, sizeof msg, "hello from %s/%s", kind, model);
	snprintf(want, sizeof want, "%s\n", msg);
	code = run_client(kind, s.addr, msg, reply, sizeof reply);
	if (code != 0)
		tap_diag("echo_client -t %s %s: exit status %d", kind, s.addr, code);
	is_str(reply, want, "echo_%s -m %s: echo_client gets its message back",
	       kind, model);

	is_int(stop_server(&s, DEADLINE_MS, NULL), 0,
	       "echo_%s -m %s: exits 0 on SIGTERM", kind, model);
	is_str(s.errtext, "", "echo_%s -m %s: nothing on stderr", kind, model);
	if (is_unix) {
		ok(access(address, F_OK) < 0 && errno == ENOENT,
		   "echo_%s -m %s: socket file removed", kind, model);
		unlink(address);
	}
}

/* -h prints the usage with the models on stdout and exits 0. */
static void test_help(void)
{
	const char *argv[] = { "echo_tcp", "-h", NULL };
	char out[4096], err[4096];

	is_int(tu_run_example(argv, out, sizeof out, err, sizeof err, DEADLINE_MS), 0,
	       "echo_tcp -h exits 0");
	ok(strstr(out, "usage: echo_tcp") && strstr(out, "sync") &&
	   strstr(out, "threading") && strstr(out, "forking") && !err[0],
	   "echo_tcp -h prints the usage, naming the models, on stdout");
}

/*
 * echo_tcp address must fail: exit 2 with one line on stderr starting
 * "echo_tcp: " and containing expect (if not NULL).
 */
static void test_bad_address(const char *address, const char *expect)
{
	const char *argv[] = { "echo_tcp", address, NULL };
	char out[1024], err[1024];

	is_int(tu_run_example(argv, out, sizeof out, err, sizeof err, DEADLINE_MS), 2,
	       "echo_tcp %s exits 2", address);
	tap_diag("stderr: %s", err);
	ok(tu_count_lines(err) == 1 && strncmp(err, "echo_tcp: ", 10) == 0 &&
	   (!expect || strstr(err, expect)) && !out[0],
	   "echo_tcp %s: one line on stderr%s%s", address,
	   expect ? " with " : "", expect ? expect : "");
}

/*
 * A command line quoting control characters (what says where): exit 2,
 * and the first line on stderr is exactly want, the argument escaped.
 */
static void test_escaped_stderr(const char *const argv[], const char *what,
				const char *want)
{
	char out[1024], err[4096];
	size_t n = strlen(want);

	is_int(tu_run_example(argv, out, sizeof out, err, sizeof err, DEADLINE_MS), 2,
	       "%s %s with control characters exits 2", argv[0], what);
	if (!ok(!strncmp(err, want, n) && err[n] == '\n',
		"%s %s: the argument is escaped, on one line", argv[0], what))
		tap_diag("stderr: %s", err);
}

/* Arguments with a newline and an escape code are quoted escaped: a bad
 * address (the library's message), a bad model, a bad client kind. */
static void test_escaped_arguments(void)
{
	const char *addr[] = { "echo_tcp", "bad\naddr\x1b[2J", NULL };
	const char *model[] = { "echo_tcp", "-m", "bad\nmodel\x1b[2J", NULL };
	const char *kind[] = { "echo_client", "-t", "bad\nkind", "x", NULL };

	test_escaped_stderr(addr, "ADDRESS",
			    "echo_tcp: cannot parse address 'bad\\naddr\\x1b[2J': missing ':PORT'");
	test_escaped_stderr(model, "-m", "echo_tcp: unknown model 'bad\\nmodel\\x1b[2J'");
	test_escaped_stderr(kind, "-t", "echo_client: unknown kind 'bad\\nkind'");
}

/*
 * With a client attached to server s, whether the server has a mapping
 * that looks like a thread stack of size bytes: an anonymous rw-p mapping
 * of exactly that size right above a guard page.
 */
static bool has_stack_of(const struct server *s, unsigned long size)
{
	unsigned long lo, hi, prev_hi = 0;
	char path[64], line[512], perm[8], c;
	bool found = false, prev_guard = false;
	int fd = tu_tcp_connect(s->addr);
	FILE *f;

	if (fd < 0 || send(fd, "x", 1, MSG_NOSIGNAL) != 1 || recv(fd, &c, 1, 0) != 1) {
		if (fd >= 0)
			close(fd);
		return false;		/* no handler thread to look at */
	}
	snprintf(path, sizeof path, "/proc/%d/maps", (int)s->pid);
	if ((f = fopen(path, "r"))) {
		while (!found && fgets(line, sizeof line, f)) {
			int used = 0;

			if (sscanf(line, "%lx-%lx %7s %*s %*s %*s%n", &lo, &hi, perm, &used) < 3)
				continue;
			found = prev_guard && prev_hi == lo && !strcmp(perm, "rw-p") &&
				hi - lo == size && line[used + strspn(line + used, " ")] == '\n';
			prev_guard = !strcmp(perm, "---p");
			prev_hi = hi;
		}
		fclose(f);
	}
	close(fd);
	return found;
}

/* -s sets thread and coroutine stacks: a 64 KiB stack serves under the
 * models that have them; a size out of range is refused with exit 2. */
static void test_stack_option(void)
{
	static const char *const stacked[] = { "threading", "coroutine", "threads+coroutine" };
	const char *argv[] = { "echo_tcp", "-s", "1k", "127.0.0.1:0", NULL };
	char reply[64], out[1024], err[2048];
	struct server s;

	for (size_t i = 0; i < sizeof stacked / sizeof stacked[0]; i++) {
		if (!ok(start_server(&s, "tcp", stacked[i], "-s", "64k", "127.0.0.1:0"),
			"echo_tcp -m %s -s 64k listens", stacked[i])) {
			tap_skip(2, "did not start");
			continue;
		}
		run_client("tcp", s.addr, "small stacks", reply, sizeof reply);
		is_str(reply, "small stacks\n", "echo_tcp -m %s -s 64k echoes", stacked[i]);
		if (i == 0)
			ok(has_stack_of(&s, 64 * 1024),
			   "echo_tcp -m threading -s 64k: a handler thread has a 64 KiB stack");
		is_int(stop_server(&s, DEADLINE_MS, NULL), 0,
		       "echo_tcp -m %s -s 64k exits 0", stacked[i]);
	}
	is_int(tu_run_example(argv, out, sizeof out, err, sizeof err, DEADLINE_MS), 2,
	       "echo_tcp -s 1k exits 2");
	ok(!strncmp(err, "echo_tcp: bad stack size '1k'", 29) && !out[0],
	   "echo_tcp -s 1k says why on stderr");
}

/* A second server on the first one's address fails, the first goes on. */
static void test_busy_address(void)
{
	struct server s;

	if (!ok(start_server(&s, "tcp", NULL, NULL, NULL, "127.0.0.1:0"),
		"busy address: first echo_tcp listens")) {
		tap_skip(3, "no first server");
		return;
	}
	test_bad_address(s.addr, "Address already in use");
	is_int(stop_server(&s, DEADLINE_MS, NULL), 0,
	       "busy address: first echo_tcp exits 0");
}

/* The byte at offset i of the big message: a pattern no period hides. */
static unsigned char pattern(size_t i)
{
	return (unsigned char)(i * 7 + i / 251);
}

/*
 * Send len bytes of pattern through fd while reading the echo, half-close
 * when all is sent, read until EOF.  Returns the bytes that came back
 * matching, or -1 on error or timeout.
 */
static ssize_t pump(int fd, size_t len)
{
	double deadline = tu_now_ms() + DEADLINE_MS;
	unsigned char out[65536], in[65536];
	size_t sent = 0, got = 0, i, chunk;
	struct pollfd p = { .fd = fd };
	bool shut = false;
	ssize_t n;
	int rc;

	for (;;) {
		if (sent == len && !shut) {
			shutdown(fd, SHUT_WR);
			shut = true;
		}
		p.events = POLLIN | (sent < len ? POLLOUT : 0);
		rc = poll(&p, 1, tu_left_ms(deadline));
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			return -1;
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			n = recv(fd, in, sizeof in, MSG_DONTWAIT);
			if (n == 0)
				return (ssize_t)got;
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				return -1;
			for (i = 0; n > 0 && i < (size_t)n; i++, got++)
				if (in[i] != pattern(got))
					return -1;
		}
		if (sent < len && (p.revents & POLLOUT)) {
			chunk = len - sent < sizeof out ? len - sent : sizeof out;
			for (i = 0; i < chunk; i++)
				out[i] = pattern(sent + i);
			n = send(fd, out, chunk, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				return -1;
			if (n > 0)
				sent += (size_t)n;
		}
	}
}

/* 1 MiB through echo_tcp comes back whole and in order. */
static void test_big_stream(void)
{
	const size_t len = 1 << 20;
	struct server s;
	ssize_t got = -1;
	int fd;

	if (!ok(start_server(&s, "tcp", NULL, NULL, NULL, "127.0.0.1:0"),
		"1 MiB: echo_tcp listens")) {
		tap_skip(2, "no server");
		return;
	}
	fd = tu_tcp_connect(s.addr);
	if (fd >= 0) {
		got = pump(fd, len);
		close(fd);
	}
	is_int(got, len, "1 MiB: every byte comes back, in order");
	is_int(stop_server(&s, DEADLINE_MS, NULL), 0, "1 MiB: echo_tcp exits 0");
}

/*
 * SIGTERM while a client sits connected and idle: with -g 1 the server
 * cuts the connection after the grace period and exits 0 soon after.
 */
static void test_idle_client(const char *model)
{
	struct pollfd p = { .events = POLLIN };
	double elapsed = 0;
	struct server s;
	char c = 0;
	int code;

	if (!ok(start_server(&s, "tcp", model, "-g", "1", "127.0.0.1:0"),
		"idle client, -m %s -g 1: echo_tcp listens", model)) {
		tap_skip(3, "no server");
		return;
	}
	/* The echo of one byte proves a handler owns the connection. */
	p.fd = tu_tcp_connect(s.addr);
	ok(p.fd >= 0 && send(p.fd, "x", 1, MSG_NOSIGNAL) == 1 &&
	   poll(&p, 1, DEADLINE_MS) == 1 && recv(p.fd, &c, 1, 0) == 1 && c == 'x',
	   "idle client, -m %s: connected, one byte echoed", model);

	code = stop_server(&s, 5000, &elapsed);
	tap_diag("-m %s: exited %d, %.0f ms after SIGTERM", model, code, elapsed);
	ok(code == 0 && elapsed < 5000,
	   "idle client, -m %s: exits 0 within 5 s of SIGTERM", model);
	ok(p.fd >= 0 && poll(&p, 1, DEADLINE_MS) == 1 && recv(p.fd, &c, 1, 0) <= 0,
	   "idle client, -m %s: its connection was closed", model);
	if (p.fd >= 0)
		close(p.fd);
	if (!ok(tu_count_lines(s.errtext) == 1 &&
	     strstr(s.errtext, "request cut after its 1.0 s grace period"),
	     "idle client, -m %s: one stderr line says it was cut", model))
		tap_diag("stderr: %s", s.errtext);
}

int main(void)
{
	size_t k, m;

	if (!mkdtemp(tmpdir))
		tap_bail("mkdtemp: %s", strerror(errno));

	for (k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
		for (m = 0; m < sizeof models / sizeof models[0]; m++)
			test_echo(kinds[k], models[m]);
	test_help();
	test_bad_address("999.1.1.1:1", NULL);
	test_bad_address("nonsense", NULL);
	test_escaped_arguments();
	test_busy_address();
	test_stack_option();
	test_big_stream();
	test_idle_client("sync");
	test_idle_client("threading");
	test_idle_client("forking");

	if (rmdir(tmpdir) < 0)
		tap_diag("rmdir %s: %s", tmpdir, strerror(errno));
	return tap_done();
}
