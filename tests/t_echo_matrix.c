/*
 * t_echo_matrix.c - every server kind (TCP, UDP, UnixStream,
 * UnixDatagram) under every model (sync, threading, forking) echoes
 * small, binary and maximum-size messages (and an empty one), then stops
 * cleanly: the listening fd is closed, no fd, thread or child is left
 * and no request is in flight.  Also TCP on "[::1]:0" and "localhost:0".
 */
#include "tap.h"
#include "testutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BIG_STREAM (64u * 1024u + 7u)	/* 64 KiB and change */
#define BIG_UDP 65507u			/* the largest IPv4 UDP payload */
#define BIG_UNIX_DGRAM 65536u		/* default max_packet_size */

static unsigned char out[256 * 1024];

static void fill_binary(unsigned char *buf, size_t n, unsigned seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		buf[i] = (unsigned char)((i * 31u + seed + (i >> 9)) & 0xff);
}

/* One echo round trip on a fresh client; checks the reply byte for byte. */
static void check_echo(ss_server *s, const char *tag, const void *msg, size_t n,
		       const char *what)
{
	ssize_t got = tu_roundtrip(s, msg, n, (char *)out, sizeof(out));
	size_t i = 0;

	if (got == (ssize_t)n)
		while (i < n && out[i] == ((const unsigned char *)msg)[i])
			i++;
	if (!ok(got == (ssize_t)n && i == n, "%s: %s echo of %zu bytes", tag,
		what, n)) {
		if (got < 0)
			tap_diag("    error: %s", strerror((int)-got));
		else
			tap_diag("    got %zd bytes, expected %zu; first difference at %zu",
				 got, n, i);
	}
}

static size_t big_size(const ss_server_ops *ops)
{
	if (ops->socktype == SOCK_STREAM)
		return BIG_STREAM;
	return ops->family == AF_UNIX ? BIG_UNIX_DGRAM : BIG_UDP;
}

/* The five round trips (and the empty message) on a serving server. */
static void echo_five(ss_server *s, const char *tag)
{
	static unsigned char big[BIG_STREAM];
	const unsigned char bin[] = { 0, 1, 2, 0xff, 0, '\n', '\r', 0x80, 0 };
	char line[64];
	size_t nbig = big_size(s->ops);

	fill_binary(big, nbig, 7);
	check_echo(s, tag, "hello", 5, "text");
	check_echo(s, tag, bin, sizeof(bin), "binary with NULs");
	check_echo(s, tag, big, nbig, "maximum-size");
	snprintf(line, sizeof(line), "line %d\n", (int)getpid());
	check_echo(s, tag, line, strlen(line), "line");
	check_echo(s, tag, "x", 1, "one-byte");
	check_echo(s, tag, "", 0, "empty");
}

/* The stop checks: listener closed, threads / children gone. */
static void check_stopped(ss_server *s, int lfd, int threads0, const char *tag)
{
	ok(tu_fd_closed(lfd), "%s: listening fd %d closed", tag, lfd);
	is_int(ss_server_active_count(s), 0, "%s: active_count 0", tag);
	ok(tu_no_children(), "%s: no children left", tag);
	bool back = tu_wait_threads_at_most(threads0, 2.0);

	ok(back, "%s: threads back to %d (now %d)", tag, threads0, tu_count_threads());
}

static void one_combo(const ss_server_ops *ops, const ss_mixin *m)
{
	int fds0 = tu_count_fds(), threads0 = tu_count_threads();
	char tag[64];
	ss_server *s;
	pthread_t t;
	int lfd, rc, fds;

	snprintf(tag, sizeof(tag), "%s/%s", ops->name, m->name);
	tap_diag("--- %s", tag);
	s = tu_server(ops, m, &tu_echo_handler, NULL);
	lfd = ss_server_fileno(s);
	tu_serve_start(s, &t);
	echo_five(s, tag);
	rc = tu_serve_stop(s, &t);
	is_int(rc, 0, "%s: serve_forever returned 0", tag);
	ss_server_close(s);
	check_stopped(s, lfd, threads0, tag);
	ss_server_free(s);
	fds = tu_count_fds();	/* the wakeup pipe lives until free */
	if (!is_int(fds, fds0, "%s: fd count back to baseline after free", tag))
		tap_diag("    leaked %d fds", fds - fds0);
}

static bool have_ipv6_loopback(void)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool yes;

	if (fd < 0)
		return false;
	yes = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return yes;
}

/* A TCP echo server on a named address; one round trip. */
static void tcp_on(const char *addr)
{
	char buf[SS_ADDRSTRLEN];
	ss_server *s = tu_server(&ss_tcp_server_ops, NULL, &tu_echo_handler, addr);
	pthread_t t;

	tap_diag("%s bound to %s", addr, ss_server_address(s, buf, sizeof(buf)));
	ok(ss_addr_port(&s->address) > 0, "%s: real port reported", addr);
	tu_serve_start(s, &t);
	check_echo(s, addr, "over the named address", 22, "text");
	tu_serve_stop(s, &t);
	ss_server_free(s);
}

int main(void)
{
	const ss_server_ops *kinds[] = {
		&ss_tcp_server_ops, &ss_udp_server_ops,
		&ss_unix_stream_server_ops, &ss_unix_dgram_server_ops,
	};
	const ss_mixin *mixins[] = {
		&ss_sync_mixin, &ss_threading_mixin, &ss_forking_mixin,
	};
	double t0 = tu_now();
	size_t k, m;

	tu_init();
	for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
		for (m = 0; m < sizeof(mixins) / sizeof(mixins[0]); m++)
			one_combo(kinds[k], mixins[m]);
	if (have_ipv6_loopback())
		tcp_on("[::1]:0");
	else
		tap_skip(2, "::1 is not available");
	tcp_on("localhost:0");
	tap_diag("took %.0f ms", (tu_now() - t0) * 1000);
	return tap_done();
}
