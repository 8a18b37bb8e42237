/*
 * t_construct.c - constructing servers.  Thousands of failed
 * constructions (a busy port, malformed addresses, a unix path in a
 * missing directory) under a 1024-descriptor limit each return NULL with
 * a clear message and leak no descriptor.  SS_DEFER_BIND lets options
 * (allow_reuse_port) be set before ss_server_bind + ss_server_activate,
 * and the bound address reports the real port.
 */
#include "tap.h"
#include "testutil.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define ROUNDS 2000

/* One bad construction: the ops, the address and what the message must
 * contain (two substrings, the second may be NULL). */
struct bad {
	const ss_server_ops *ops;
	char addr[256];
	const char *want1, *want2;
};

static void limit_fds(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		tap_bail("getrlimit: %s", strerror(errno));
	rl.rlim_cur = rl.rlim_max < 1024 ? rl.rlim_max : 1024;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		tap_bail("setrlimit: %s", strerror(errno));
}

/* A listening socket holding a port; its address in text. */
static int hold_port(char *text, size_t len)
{
	ss_server *s = tu_server(&ss_tcp_server_ops, NULL, NULL, NULL);
	int fd;

	ss_server_address(s, text, len);
	fd = dup(ss_server_fileno(s));	/* keep the listener past free */
	ss_server_free(s);
	if (fd < 0)
		tap_bail("dup: %s", strerror(errno));
	return fd;
}

static int make_cases(struct bad *b, const char *busy)
{
	int n = 0;

	b[n++] = (struct bad){ &ss_tcp_server_ops, "", "Address already in use", busy };
	snprintf(b[0].addr, sizeof(b[0].addr), "%s", busy);
	b[n++] = (struct bad){ &ss_tcp_server_ops, "x:y", "cannot parse address 'x:y'", NULL };
	b[n++] = (struct bad){ &ss_tcp_server_ops, "1.2.3.4.5:1", "cannot parse address", "1.2.3.4.5:1" };
	b[n++] = (struct bad){ &ss_tcp_server_ops, "127.0.0.1:99999", "cannot parse address", "99999" };
	b[n++] = (struct bad){ &ss_tcp_server_ops, "[::1", "cannot parse address", "[::1" };
	b[n++] = (struct bad){ &ss_tcp_server_ops, "", "cannot parse address", NULL };
	b[n++] = (struct bad){ &ss_udp_server_ops, "", "cannot parse address", NULL };
	b[n++] = (struct bad){ &ss_udp_server_ops, "256.0.0.1:53", "cannot parse address", "256.0.0.1" };
	b[n++] = (struct bad){ &ss_tcp_server_ops, "127.0.0.1:-1", "cannot parse address", NULL };
	b[n] = (struct bad){ &ss_unix_stream_server_ops, "", "No such file or directory", "/missing/" };
	snprintf(b[n].addr, sizeof(b[n].addr), "%s/missing/x.sock", tu_tmpdir());
	n++;
	b[n] = b[n - 1];
	b[n].ops = &ss_unix_dgram_server_ops;
	n++;
	return n;
}

/* Try one bad construction; true when it failed as it should.  The
 * first time each case runs, its message is checked and shown. */
static bool try_bad(const struct bad *b, bool first)
{
	ss_error err = { 0 };
	ss_server *s = tu_server_try(b->ops, NULL, &tu_echo_handler, b->addr, &err);
	bool good = s == NULL && err.code < 0 && err.msg[0] &&
		    strstr(err.msg, b->want1) && (!b->want2 || strstr(err.msg, b->want2));

	if (first) {
		tap_diag("%s '%s': %s", b->ops->name, b->addr, err.msg);
		if (!ok(good, "%s '%s' fails with \"%s\"", b->ops->name, b->addr, b->want1))
			tap_diag("    got: %s (code %d, server %p)", err.msg, err.code,
				 (void *)s);
	}
	ss_server_free(s);
	return good;
}

static void test_failures(void)
{
	struct bad cases[16];
	char busy[SS_ADDRSTRLEN];
	int hold, ncases, fds0, i, good = 0;
	double t0 = tu_now();

	hold = hold_port(busy, sizeof(busy));
	ncases = make_cases(cases, busy);
	tu_tmpdir();
	fds0 = tu_count_fds();
	for (i = 0; i < ROUNDS; i++)
		good += try_bad(&cases[i % ncases], i < ncases);
	is_int(good, ROUNDS, "%d failed constructions all returned NULL with the message",
	       ROUNDS);
	is_int(tu_count_fds(), fds0, "no descriptor leaked by failed constructions");
	tap_diag("%d failed constructions: %.0f ms", ROUNDS, (tu_now() - t0) * 1000);
	close(hold);
}

static bool reuseport_set(int fd)
{
	int v = 0;
	socklen_t len = sizeof(v);

	return getsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &v, &len) == 0 && v;
}

static ss_server *deferred(const char *addr)
{
	ss_error err = { 0 };
	ss_server *s = ss_server_new(&ss_tcp_server_ops, NULL, addr,
				     &tu_echo_handler, SS_DEFER_BIND, &err);

	if (!s)
		tap_bail("deferred server on %s: %s", addr, err.msg);
	return s;
}

static void test_defer_bind(void)
{
	char addr[SS_ADDRSTRLEN], out[16];
	ss_server *s = deferred("127.0.0.1:0"), *s2;
	pthread_t t;

	is_int(ss_server_fileno(s), -1, "SS_DEFER_BIND: no socket before bind");
	ok(ss_server_activate(s) < 0, "activate before bind fails");
	s->allow_reuse_port = true;
	is_int(ss_server_bind(s), 0, "ss_server_bind after setting allow_reuse_port");
	ok(ss_addr_port(&s->address) > 0, "the bound address has the real port (%d)",
	   ss_addr_port(&s->address));
	ok(reuseport_set(ss_server_fileno(s)), "SO_REUSEPORT is set on the socket");
	is_int(ss_server_activate(s), 0, "ss_server_activate");
	ss_server_address(s, addr, sizeof(addr));
	s2 = deferred(addr);
	s2->allow_reuse_port = true;
	is_int(ss_server_bind(s2), 0, "a second reuse_port server binds %s", addr);
	tu_serve_start(s, &t);
	ok(tu_roundtrip(s, "defer", 5, out, sizeof(out)) == 5 && !memcmp(out, "defer", 5),
	   "the deferred server serves");
	tu_serve_stop(s, &t);
	ss_server_free(s2);
	ss_server_free(s);
}

int main(void)
{
	double t0 = tu_now();

	tu_init();
	limit_fds();
	test_failures();
	test_defer_bind();
	tap_diag("took %.0f ms", (tu_now() - t0) * 1000);
	return tap_done();
}
