/*
 * t_dgram_loop.c - a datagram server never answers a datagram whose reply
 * would come back to the server itself, nor one from port 0, under every
 * model (the library's list, ss_mixin_at).  The datagrams: one the
 * server's own socket sends to the server's address; one from a second
 * socket bound to the server's port on the wildcard address (SO_REUSEADDR,
 * as the server has), which sends from the server's very address; one
 * whose source port recvfrom reports as 0 (the system call is swapped:
 * nothing unprivileged sends from port 0).  Each is dropped without
 * running the handler, counted by ss_server_dropped_datagrams, the first
 * reported once through handle_error naming its source; the server goes
 * on answering clients and does not keep receiving its own echoes.
 * Also a server bound to 0.0.0.0 (its own datagrams from two loopback
 * addresses), [::1], and unix datagram servers (their own path).
 */
#include "ss_internal.h"
#include "tap.h"
#include "testutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define WAIT_SECS 5.0	/* longest wait for the server to see a datagram */

/* What the server did, in memory its worker processes share with us. */
struct seen {
	atomic_int handled;		/* handler runs */
	atomic_int reports;		/* handle_error(s, NULL, ...) calls */
	atomic_int request_errors;	/* handle_error(s, r, ...) calls */
	atomic_int zero_port;		/* 1: the next recvfrom says port 0 */
	atomic_int first_ready;		/* 1 once first is written */
	char first[SS_ERRMSG_MAX];	/* the first report's message */
};

static struct seen *seen;
static ssize_t (*real_recvfrom)(int fd, void *buf, size_t len, int flags,
				struct sockaddr *addr, socklen_t *alen);

static int count_and_echo(ss_request *r)
{
	atomic_fetch_add(&seen->handled, 1);
	return tu_echo(r);
}

static const ss_handler counting_echo = { .handle = count_and_echo };

/* handle_error: count, keep the first server-level message, print
 * nothing. */
static void log_error(ss_server *s, ss_request *r, int err)
{
	if (r) {
		atomic_fetch_add(&seen->request_errors, 1);
		return;
	}
	if (atomic_fetch_add(&seen->reports, 1) == 0) {
		snprintf(seen->first, sizeof seen->first, "%s", s->errmsg);
		atomic_store(&seen->first_ready, 1);
	}
}

/* recvfrom as the kernel does it, except that once asked it reports the
 * source port of an inet datagram as 0. */
static ssize_t zeroing_recvfrom(int fd, void *buf, size_t len, int flags,
				struct sockaddr *addr, socklen_t *alen)
{
	ssize_t n = real_recvfrom(fd, buf, len, flags, addr, alen);

	if (n >= 0 && addr && atomic_exchange(&seen->zero_port, 0)) {
		if (addr->sa_family == AF_INET)
			((struct sockaddr_in *)addr)->sin_port = 0;
		else if (addr->sa_family == AF_INET6)
			((struct sockaddr_in6 *)addr)->sin6_port = 0;
	}
	return n;
}

/* A copy of base whose handle_error is log_error (one per base). */
static const ss_server_ops *logging(const ss_server_ops *base)
{
	static ss_server_ops udp, unix_dgram;
	ss_server_ops *o = base == &ss_udp_server_ops ? &udp : &unix_dgram;

	*o = *base;
	o->handle_error = log_error;
	return o;
}

struct want {
	const ss_server *s;
	unsigned long long n;
};

static bool first_written(void *arg)
{
	return atomic_load(&seen->first_ready) != 0;
}

static bool dropped_reached(void *arg)
{
	struct want *w = arg;

	return ss_server_dropped_datagrams(w->s) >= w->n;
}

/* Wait until the server dropped n datagrams; the count it has then. */
static unsigned long long wait_dropped(const ss_server *s, unsigned long long n)
{
	struct want w = { s, n };

	tu_wait_until(dropped_reached, &w, WAIT_SECS);
	return ss_server_dropped_datagrams(s);
}

/* a with the port of the server's address. */
static void with_port(ss_addr *out, const char *a, const ss_server *s)
{
	ss_error err;

	if (ss_addr_parse(out, a, AF_UNSPEC, &err) < 0)
		tap_bail("%s", err.msg);
	if (out->family == AF_INET)
		((struct sockaddr_in *)&out->ss)->sin_port = htons(ss_addr_port(&s->address));
	else
		((struct sockaddr_in6 *)&out->ss)->sin6_port = htons(ss_addr_port(&s->address));
}

/* The server's own socket sends one datagram to to. */
static void send_from_server(const ss_server *s, const ss_addr *to)
{
	if (sendto(ss_server_fileno(s), "self", 4, 0, (const struct sockaddr *)&to->ss,
		   to->len) != 4)
		tap_bail("sendto from the server's socket: %s", strerror(errno));
}

/*
 * Send one datagram to the server from its own address without its
 * socket: a second socket bound to the server's port on the wildcard
 * address (SO_REUSEADDR on both lets it) sends to the server's address,
 * so the source is that address; the server's more specific bind keeps
 * receiving what comes there.  false when the socket cannot be made.
 */
static bool send_spoofed(const ss_server *s)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(ss_addr_port(&s->address)) };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), one = 1;
	bool sent;

	if (fd < 0)
		return false;
	sent = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
	       bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	       sendto(fd, "spoof", 5, 0, (const struct sockaddr *)&s->address.ss,
		      s->address.len) == 5;
	if (!sent)
		tap_diag("    spoofing socket: %s", strerror(errno));
	close(fd);
	return sent;
}

/* A client's datagram that recvfrom reports as coming from port 0. */
static void send_from_port_zero(const ss_server *s)
{
	int fd = tu_connect(s);

	atomic_store(&seen->zero_port, 1);
	if (send(fd, "zero", 4, 0) != 4)
		tap_bail("send: %s", strerror(errno));
	close(fd);
}

static void reset_seen(void)
{
	atomic_store(&seen->handled, 0);
	atomic_store(&seen->reports, 0);
	atomic_store(&seen->request_errors, 0);
	atomic_store(&seen->zero_port, 0);
	atomic_store(&seen->first_ready, 0);
	seen->first[0] = '\0';
}

/*
 * A serving server, answered once: drops the unanswerable datagrams sent
 * by send_one(s, i) for i < n (each dropped before the next is sent),
 * then answers a client again and drops nothing more.  source is the
 * address the first report must name.
 */
static void check_drops(ss_server *s, const char *tag, int n,
			void (*send_one)(ss_server *s, int i), const char *source)
{
	unsigned long long got;
	int i;

	ok(tu_echo_once(s, "before"), "%s: a client is answered", tag);
	for (i = 0; i < n; i++) {
		send_one(s, i);
		got = wait_dropped(s, (unsigned long long)i + 1);
		if (!is_int(got, i + 1, "%s: datagram %d dropped and counted", tag, i + 1))
			break;
	}
	ok(tu_echo_once(s, "after"), "%s: a client is still answered", tag);
	is_int(ss_server_dropped_datagrams(s), n,
	       "%s: nothing more dropped after that round trip (no echo to itself)", tag);
	is_int(atomic_load(&seen->handled), 2,
	       "%s: the handler ran for the two clients only", tag);
	/* the count goes up before the report is made */
	tu_wait_until(first_written, NULL, WAIT_SECS);
	is_int(atomic_load(&seen->reports), 1, "%s: one report for the %d drop(s)", tag, n);
	if (!ok(atomic_load(&seen->first_ready) && strstr(seen->first, source) &&
		strstr(seen->first, "own address") && strstr(seen->first, "dropped"),
		"%s: the report names the source %s and says why", tag, source))
		tap_diag("    got '%s'", seen->first);
	is_int(atomic_load(&seen->request_errors), 0, "%s: no request failed", tag);
}

/* A server of kind on addr (NULL: the helpers' default) with model m,
 * logging, two workers where the model keeps some, serving. */
static ss_server *start(const ss_server_ops *kind, const ss_mixin *m, const char *addr,
			pthread_t *t)
{
	ss_server *s = tu_server(logging(kind), m, &counting_echo, addr);

	s->workers = 2;
	reset_seen();
	tu_serve_start(s, t);
	return s;
}

static void stop(ss_server *s, pthread_t *t)
{
	tu_serve_stop(s, t);
	ss_server_free(s);
}

/* 127.0.0.1: its own socket, the spoofing socket, port 0. */
static void send_udp(ss_server *s, int i)
{
	if (i == 0)
		send_from_server(s, &s->address);
	else if (i == 1 && !send_spoofed(s))
		tap_bail("cannot bind a second socket to the server's port");
	else if (i == 2)
		send_from_port_zero(s);
}

static void test_udp(const ss_mixin *m)
{
	char tag[64], source[SS_ADDRSTRLEN];
	pthread_t t;
	ss_server *s = start(&ss_udp_server_ops, m, "127.0.0.1:0", &t);

	snprintf(tag, sizeof tag, "udp/%s", m->name);
	check_drops(s, tag, 3, send_udp, ss_server_address(s, source, sizeof source));
	stop(s, &t);
}

/* Unix: its own socket, to its own path. */
static void send_unix(ss_server *s, int i)
{
	send_from_server(s, &s->address);
}

static void test_unix(const ss_mixin *m)
{
	char tag[64], source[SS_ADDRSTRLEN];
	pthread_t t;
	ss_server *s = start(&ss_unix_dgram_server_ops, m, NULL, &t);

	snprintf(tag, sizeof tag, "unix_dgram/%s", m->name);
	check_drops(s, tag, 1, send_unix, ss_server_address(s, source, sizeof source));
	stop(s, &t);
}

/* 0.0.0.0: its own socket to 127.0.0.1 and to 127.0.0.2 (the kernel
 * sends both from 127.0.0.1, an address of the host, from the server's
 * port: a reply would come back to it either way). */
static void send_wildcard(ss_server *s, int i)
{
	ss_addr to;

	with_port(&to, i == 0 ? "127.0.0.1:0" : "127.0.0.2:0", s);
	send_from_server(s, &to);
}

static void test_wildcard(void)
{
	char source[SS_ADDRSTRLEN];
	pthread_t t;
	ss_server *s = start(&ss_udp_server_ops, &ss_sync_mixin, "0.0.0.0:0", &t);
	ss_addr own;

	with_port(&own, "127.0.0.1:0", s);
	ss_addr_format(&own, source, sizeof source);
	check_drops(s, "udp 0.0.0.0", 2, send_wildcard, source);
	stop(s, &t);
}

static void send_v6(ss_server *s, int i)
{
	send_from_server(s, &s->address);
}

static void test_v6(void)
{
	char source[SS_ADDRSTRLEN];
	ss_error err = { 0 };
	pthread_t t;
	ss_server *s = tu_server_try(logging(&ss_udp_server_ops), NULL, &counting_echo,
				     "[::1]:0", &err);

	if (!s) {
		tap_skip(8, "no [::1]: %s", err.msg);
		return;
	}
	reset_seen();
	tu_serve_start(s, &t);
	check_drops(s, "udp [::1]", 1, send_v6, ss_server_address(s, source, sizeof source));
	stop(s, &t);
}

int main(void)
{
	const ss_mixin *m;
	size_t i;

	tu_init();
	seen = mmap(NULL, sizeof *seen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		    -1, 0);
	if (seen == MAP_FAILED)
		tap_bail("mmap: %s", strerror(errno));
	real_recvfrom = ss__sys.recvfrom;
	ss__sys.recvfrom = zeroing_recvfrom;
	for (i = 0; (m = ss_mixin_at(i)); i++) {
		tap_diag("--- %s", m->name);
		test_udp(m);
		test_unix(m);
	}
	test_wildcard();
	test_v6();
	ss__sys_reset();
	return tap_done();
}
