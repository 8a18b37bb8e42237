/*
 * t_stream.c - the handler I/O layers.  Stream (TCP, sync or threading
 * server in a thread): ss_read_line with a max (too long, last line
 * without '\n', CRLF), ss_read_exact over 1-byte client writes and at
 * EOF, ss_read_some, ss_read_view, line then exact reads sharing the
 * buffer,
 * ss_write_all of 1 MiB + ss_flush, handler->timeout and
 * ss_request_set_timeout, handler->nodelay, and what a request exposes
 * (peer, server, fd).  Datagram (UDP): reads of the datagram, a reply
 * written in pieces leaving as one datagram, the empty reply, a 65507-byte
 * datagram, and a datagram over max_packet_size reported, not cut.
 *
 * Handlers report what they saw by writing it back to the client, so the
 * checks run in the test thread and need no shared state; handle_error
 * overrides record into a mutex-protected log.
 */
#include <socketserver.h>
#include "tap.h"
#include "faultutil.h"
#include "testutil.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define MIB (1024u * 1024u)

/* ------------------------------------------------------------------ */
/* The handle_error log                                                */
/* ------------------------------------------------------------------ */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static int log_count;
static int log_err;
static bool log_had_request;
static char log_msg[SS_ERRMSG_MAX];

static void log_clear(void)
{
	pthread_mutex_lock(&log_mu);
	log_count = 0;
	log_err = 0;
	log_had_request = false;
	log_msg[0] = '\0';
	pthread_mutex_unlock(&log_mu);
}

/* handle_error override: remember the last error and count them. */
static void record_error(ss_server *s, ss_request *r, int err)
{
	pthread_mutex_lock(&log_mu);
	log_count++;
	log_err = err;
	log_had_request = r != NULL;
	snprintf(log_msg, sizeof log_msg, "%s", r ? r->errmsg : s->errmsg);
	pthread_mutex_unlock(&log_mu);
}

static int log_get(int *err, char *msg)
{
	int n;

	pthread_mutex_lock(&log_mu);
	n = log_count;
	if (err)
		*err = log_err;
	if (msg)
		memcpy(msg, log_msg, sizeof log_msg);
	pthread_mutex_unlock(&log_mu);
	return n;
}

static bool log_has_one(void *arg)
{
	return log_get(NULL, NULL) > 0;
}

/* The tables with handle_error recorded. */
static ss_server_ops tcp_ops;
static ss_server_ops udp_ops;

static void init_ops(void)
{
	tcp_ops = ss_tcp_server_ops;
	tcp_ops.handle_error = record_error;
	udp_ops = ss_udp_server_ops;
	udp_ops.handle_error = record_error;
}

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

/* printf into the request's writer. */
static ssize_t say(ss_request *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static ssize_t say(ss_request *r, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof buf)
		n = (int)sizeof buf - 1;
	return ss_write_all(r, buf, (size_t)n);
}

/* Copy len bytes of s into out with \r and \n spelled out. */
static const char *escape(const char *s, size_t len, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < len && o + 3 < cap; i++) {
		if (s[i] == '\r' || s[i] == '\n') {
			out[o++] = '\\';
			out[o++] = s[i] == '\r' ? 'r' : 'n';
		} else {
			out[o++] = s[i];
		}
	}
	out[o] = '\0';
	return out;
}

/* A server and the thread serving it. */
struct srv {
	ss_server *s;
	pthread_t th;
};

/* Serve h with ops/mixin on an ephemeral loopback port, in a thread. */
static struct srv up(const ss_server_ops *ops, const ss_mixin *m,
		     const ss_handler *h)
{
	struct srv v = { .s = tu_server(ops, m, h, NULL) };

	tu_serve_start(v.s, &v.th);
	return v;
}

static void down(struct srv *v)
{
	tu_serve_stop(v->s, &v->th);
	ss_server_free(v->s);
}

/* Connect, send len bytes, half-close, read the reply to EOF into out
 * (NUL-terminated, at most cap - 1 bytes).  Returns out. */
static char *talk(ss_server *s, const void *msg, size_t len, char *out,
		  size_t cap)
{
	ssize_t n = tu_roundtrip(s, msg, len, out, cap - 1);

	out[n > 0 ? n : 0] = '\0';
	if (n < 0)
		tap_diag("roundtrip: %s", strerror((int)-n));
	return out;
}

/* ------------------------------------------------------------------ */
/* ss_read_line                                                        */
/* ------------------------------------------------------------------ */

/* Read lines with max 16 and report each: "rc[escaped line]". */
static int h_lines(ss_request *r)
{
	char line[16], esc[64];
	ssize_t n;

	for (;;) {
		n = ss_read_line(r, line, sizeof line);
		if (n == -EMSGSIZE) {
			say(r, "%zd[%s]\nmsg:%s\n", n,
			    escape(line, sizeof line - 1, esc, sizeof esc),
			    r->errmsg);
			continue;
		}
		if (n < 0)
			return n;
		say(r, "%zd[%s]\n", n, escape(line, strlen(line), esc, sizeof esc));
		if (n == 0)
			break;
	}
	return say(r, "END\n") < 0 ? -EIO : 0;
}

static void test_read_line(void)
{
	static const ss_handler h = { .handle = h_lines };
	static const char in[] = "hello\r\nshort\nabcdefghijklmn\n"
		"0123456789abcdefXYZ\nlast";
	struct srv v = up(&tcp_ops, &ss_sync_mixin, &h);
	char got[1024], *msg, *eol;

	talk(v.s, in, sizeof in - 1, got, sizeof got);
	msg = strstr(got, "msg:");
	eol = msg ? strchr(msg, '\n') : NULL;
	/* the message text is the library's: check it apart */
	ok(eol && eol - msg > 4, "-EMSGSIZE comes with a message");
	if (eol) {
		tap_diag("read_line message: %.*s", (int)(eol - msg), msg);
		memmove(msg, eol + 1, strlen(eol + 1) + 1);
	}
	is_str(got, "7[hello\\r\\n]\n"
		    "6[short\\n]\n"
		    "15[abcdefghijklmn\\n]\n"
		    "-90[0123456789abcde]\n"
		    "5[fXYZ\\n]\n"
		    "4[last]\n"
		    "0[]\n"
		    "END\n",
	       "read_line: CRLF kept, 15 bytes fit max 16, longer -> -EMSGSIZE "
	       "with max-1 bytes consumed, last line without newline, 0 at EOF");
	down(&v);
}

/* ------------------------------------------------------------------ */
/* ss_read_exact, ss_read_some, mixed                                  */
/* ------------------------------------------------------------------ */

/* Three exact reads of 1000: report count and whether the pattern held. */
static int h_exact(ss_request *r)
{
	unsigned char buf[1000];
	size_t off = 0;

	for (int i = 0; i < 3; i++) {
		ssize_t n = ss_read_exact(r, buf, sizeof buf);

		if (n < 0)
			return (int)n;
		say(r, "%zd %s\n", n,
		    fu_check(buf, (size_t)n, off) == (size_t)n ? "ok" : "BAD");
		off += (size_t)n;
	}
	return 0;
}

static void test_read_exact(void)
{
	static const ss_handler h = { .handle = h_exact };
	struct srv v = up(&tcp_ops, &ss_sync_mixin, &h);
	unsigned char data[1500];
	char got[256];
	int fd = tu_connect(v.s), one = 1;
	ssize_t n;

	fu_fill(data, sizeof data, 0);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	for (size_t i = 0; i < sizeof data; i++)
		tu_send_all(fd, data + i, 1);
	shutdown(fd, SHUT_WR);
	n = tu_read_to_eof(fd, got, sizeof got - 1, TU_IO_TIMEOUT);
	got[n > 0 ? n : 0] = '\0';
	close(fd);
	is_str(got, "1000 ok\n500 ok\n0 ok\n",
	       "read_exact over 1500 one-byte writes: 1000, then 500 at EOF, then 0");
	down(&v);
}

/* read_some: report what came, then what the next read_some gives. */
static int h_some(ss_request *r)
{
	char buf[100];
	ssize_t n = ss_read_some(r, buf, sizeof buf);

	if (n < 0)
		return (int)n;
	say(r, "some %zd [%.*s]\n", n, (int)n, buf);
	ss_flush(r);
	n = ss_read_some(r, buf, sizeof buf);
	say(r, "then %zd\n", n);
	return 0;
}

static void test_read_some(void)
{
	static const ss_handler h = { .handle = h_some };
	struct srv v = up(&tcp_ops, &ss_sync_mixin, &h);
	int fd = tu_connect(v.s);
	char line[200];
	ssize_t n;

	tu_send_all(fd, "abc", 3);
	/* the reply comes while the connection is open: read_some did not
	 * wait for 100 bytes */
	n = recv(fd, line, sizeof line - 1, 0);
	line[n > 0 ? n : 0] = '\0';
	ok(!strcmp(line, "some 3 [abc]\n") || !strcmp(line, "some 1 [a]\n") ||
	   !strcmp(line, "some 2 [ab]\n"),
	   "read_some returns what is there without waiting for more (got '%s')",
	   line);
	shutdown(fd, SHUT_WR);
	n = tu_read_to_eof(fd, line, sizeof line - 1, TU_IO_TIMEOUT);
	line[n > 0 ? n : 0] = '\0';
	ok(!strncmp(line, "then ", 5) && strtol(line + 5, NULL, 10) >= 0,
	   "read_some then returns the rest or 0 at EOF (got '%s')", line);
	close(fd);
	down(&v);
}

/* ss_read_view: 3 bytes in place, 2 copied, 0 for max 0, then views of
 * whatever is left up to EOF. */
static int h_view(ss_request *r)
{
	const void *p = NULL;
	char buf[8], rest[64];
	size_t nrest = 0;
	ssize_t n, n0;

	n = ss_read_view(r, &p, 3);
	say(r, "V%zd[%.*s]", n, n > 0 ? (int)n : 0, n > 0 ? (const char *)p : "");
	n = ss_read_some(r, buf, 2);
	say(r, "S%zd[%.*s]", n, n > 0 ? (int)n : 0, buf);
	n0 = ss_read_view(r, &p, 0);
	while ((n = ss_read_view(r, &p, SIZE_MAX)) > 0 && nrest + (size_t)n <= sizeof rest) {
		memcpy(rest + nrest, p, (size_t)n);
		nrest += (size_t)n;
	}
	return say(r, "Z%zd R[%.*s] E%zd\n", n0, (int)nrest, rest, n) < 0 ? -EIO : 0;
}

static void test_read_view(void)
{
	static const ss_handler h = { .handle = h_view };
	struct srv v = up(&tcp_ops, &ss_sync_mixin, &h);
	struct srv u = up(&udp_ops, &ss_sync_mixin, &h);
	char out[128];

	is_str(talk(v.s, "abcdefgh", 8, out, sizeof out),
	       "V3[abc]S2[de]Z0 R[fgh] E0\n",
	       "read_view: in place up to max, shares the buffer with read_some, to EOF");
	down(&v);
	is_str(talk(u.s, "abcdefgh", 8, out, sizeof out),
	       "V3[abc]S2[de]Z0 R[fgh] E0\n",
	       "read_view of a datagram: pieces of it, then 0");
	down(&u);
}

/* A header line, an exact body, a trailing line, through one buffer. */
static int h_mixed(ss_request *r)
{
	char line[64], body[16] = { 0 }, esc[128];
	ssize_t n;

	n = ss_read_line(r, line, sizeof line);
	say(r, "L%zd[%s]", n, escape(line, n > 0 ? (size_t)n : 0, esc, sizeof esc));
	n = ss_read_exact(r, body, 5);
	say(r, "X%zd[%.5s]", n, body);
	n = ss_read_line(r, line, sizeof line);
	say(r, "L%zd[%s]", n, escape(line, n > 0 ? (size_t)n : 0, esc, sizeof esc));
	n = ss_read_exact(r, body, 5);
	say(r, "X%zd\n", n);
	return 0;
}

static void test_mixed(void)
{
	static const ss_handler h = { .handle = h_mixed };
	static const char in[] = "HDR 5\nabcdeTAIL\n";
	struct srv v = up(&tcp_ops, &ss_sync_mixin, &h);
	char got[256];

	is_str(talk(v.s, in, sizeof in - 1, got, sizeof got),
	       "L6[HDR 5\\n]X5[abcde]L5[TAIL\\n]X0\n",
	       "read_line then read_exact then read_line share the buffer");
	down(&v);
}

/* ------------------------------------------------------------------ */
/* ss_write_all                                                        */
/* ------------------------------------------------------------------ */

/* 1 MiB in one write_all, 1000 pieces of 37 bytes, then flush. */
static int h_write(ss_request *r)
{
	unsigned char *big = malloc(MIB);
	size_t off = MIB;
	ssize_t n;
	int rc = -ENOMEM;

	if (!big)
		return rc;
	fu_fill(big, MIB, 0);
	n = ss_write_all(r, big, MIB);
	rc = n < 0 ? (int)n : n != (ssize_t)MIB ? -EIO : 0;
	for (int i = 0; rc == 0 && i < 1000; i++, off += 37) {
		fu_fill(big, 37, off);
		n = ss_write_all(r, big, 37);
		rc = n < 0 ? (int)n : n != 37 ? -EIO : 0;
	}
	if (rc == 0)
		rc = ss_flush(r);
	free(big);
	return rc;
}

static void test_write_all(void)
{
	static const ss_handler h = { .handle = h_write };
	struct srv v = up(&tcp_ops, &ss_sync_mixin, &h);
	size_t want = MIB + 37000;
	unsigned char *buf = malloc(want + 1);
	int fd = tu_connect(v.s);
	ssize_t n;

	log_clear();
	n = tu_read_to_eof(fd, buf, want + 1, TU_IO_TIMEOUT);
	close(fd);
	is_int(n, want, "write_all 1 MiB + 1000 x 37 bytes + flush: all arrive");
	is_int(n > 0 ? fu_check(buf, (size_t)n, 0) : 0, n > 0 ? n : 0,
	       "the bytes are the pattern, in order");
	free(buf);
	down(&v);
	is_int(log_get(NULL, NULL), 0, "no handle_error for the writer");
}

/* ------------------------------------------------------------------ */
/* Timeouts                                                            */
/* ------------------------------------------------------------------ */

/* Echo one line, or fail with what read_line returned. */
static int h_echo_line(ss_request *r)
{
	char line[256];
	ssize_t n = ss_read_line(r, line, sizeof line);

	if (n < 0)
		return (int)n;
	return ss_write_all(r, line, (size_t)n) < 0 ? -EIO : 0;
}

/* True when fd has EOF (or an error) waiting. */
static bool peer_closed(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;

	if (poll(&p, 1, 0) <= 0)
		return false;
	return recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK) <= 0;
}

static void test_timeout(void)
{
	static const ss_handler h = { .handle = h_echo_line, .timeout = 0.2 };
	struct srv v = up(&tcp_ops, &ss_threading_mixin, &h);
	char msg[SS_ERRMSG_MAX], line[64];
	int silent, other, err = 0;
	double t0 = tu_now(), took;
	ssize_t n;

	log_clear();
	silent = tu_connect(v.s);
	other = tu_connect(v.s);
	tu_send_all(other, "hi\n", 3);
	n = recv(other, line, sizeof line - 1, 0);
	ok(n == 3 && !memcmp(line, "hi\n", 3),
	   "another client is served while the silent one waits");
	ok(!peer_closed(silent), "the silent client is still connected then "
	   "(after %.0f ms)", (tu_now() - t0) * 1000);
	close(other);
	ok(tu_wait_until(log_has_one, NULL, 3.0),
	   "handle_error is called for the silent client");
	took = tu_now() - t0;
	ok(took >= 0.15 && took < 2.0, "after about 0.2 s (%.3f s)", took);
	is_int(log_get(&err, msg), 1, "handle_error called once");
	is_int(err, -ETIMEDOUT, "with -ETIMEDOUT");
	ok(strcasestr(msg, "timed out") || strcasestr(msg, "timeout"),
	   "message mentions the timeout: '%s'", msg);
	n = tu_read_to_eof(silent, line, sizeof line, TU_IO_TIMEOUT);
	is_int(n, 0, "the silent client's connection is closed");
	close(silent);
	down(&v);
}

/* "short": 50 ms timeout, report the result and its time; "long": 2 s,
 * say ready, then read a line the client sends after 400 ms. */
static int h_set_timeout(ss_request *r)
{
	char line[64];
	double t0;
	ssize_t n = ss_read_line(r, line, sizeof line);

	if (n <= 0)
		return (int)n;
	if (!strcmp(line, "short\n")) {
		ss_request_set_timeout(r, 0.05);
		t0 = tu_now();
		n = ss_read_some(r, line, sizeof line);
		say(r, "%zd %.0f\n", n, (tu_now() - t0) * 1000);
		return 0;
	}
	ss_request_set_timeout(r, 2.0);
	say(r, "ready\n");
	ss_flush(r);
	n = ss_read_line(r, line, sizeof line);
	say(r, "%zd\n", n);
	return 0;
}

static void test_set_timeout(void)
{
	static const ss_handler h = { .handle = h_set_timeout, .timeout = 0.2 };
	struct srv v = up(&tcp_ops, &ss_threading_mixin, &h);
	char line[64] = "";
	long rc = 0, ms = 0;
	int fd;
	ssize_t n;

	fd = tu_connect(v.s);
	tu_send_all(fd, "short\n", 6);
	n = tu_read_to_eof(fd, line, sizeof line - 1, TU_IO_TIMEOUT);
	line[n > 0 ? n : 0] = '\0';
	sscanf(line, "%ld %ld", &rc, &ms);
	is_int(rc, -ETIMEDOUT, "set_timeout(0.05): read_some times out");
	ok(ms >= 40 && ms < 180, "after about 50 ms, not 200 (%ld ms)", ms);
	close(fd);

	fd = tu_connect(v.s);
	tu_send_all(fd, "long\n", 5);
	n = recv(fd, line, 6, MSG_WAITALL);
	ok(n == 6 && !memcmp(line, "ready\n", 6), "handler raised its timeout");
	poll(NULL, 0, 400);	/* longer than the handler's 0.2 s */
	tu_send_all(fd, "late\n", 5);
	n = tu_read_to_eof(fd, line, sizeof line - 1, TU_IO_TIMEOUT);
	line[n > 0 ? n : 0] = '\0';
	is_str(line, "5\n", "set_timeout(2.0): a line 400 ms later is read");
	close(fd);
	down(&v);
}

/* ------------------------------------------------------------------ */
/* nodelay, request fields                                             */
/* ------------------------------------------------------------------ */

static int h_nodelay(ss_request *r)
{
	int v = -1;
	socklen_t len = sizeof v;

	if (getsockopt(r->fd, IPPROTO_TCP, TCP_NODELAY, &v, &len) < 0)
		return -errno;
	return say(r, "%d", v != 0) < 0 ? -EIO : 0;
}

static void test_nodelay(void)
{
	static const ss_handler on = { .handle = h_nodelay, .nodelay = true };
	static const ss_handler off = { .handle = h_nodelay };
	struct srv v = up(&tcp_ops, &ss_sync_mixin, &on);
	char got[16];

	is_str(talk(v.s, NULL, 0, got, sizeof got), "1",
	       "nodelay = true: TCP_NODELAY is set on r->fd");
	down(&v);
	v = up(&tcp_ops, &ss_sync_mixin, &off);
	is_str(talk(v.s, NULL, 0, got, sizeof got), "0",
	       "nodelay = false: TCP_NODELAY is not set");
	down(&v);
}

static _Atomic(ss_server *) the_server;

/* Report the peer text, whether r->server is the server, whether r->fd
 * is a socket, and whether its local address is the server's. */
static int h_request(ss_request *r)
{
	char peer[SS_ADDRSTRLEN], mine[SS_ADDRSTRLEN], srv[SS_ADDRSTRLEN];
	ss_addr local = { .len = sizeof local.ss };
	struct stat st;

	getsockname(r->fd, (struct sockaddr *)&local.ss, &local.len);
	local.family = local.ss.ss_family;
	ss_addr_format(&local, mine, sizeof mine);
	ss_server_address(r->server, srv, sizeof srv);
	say(r, "%s %d %d %d", ss_request_peer(r, peer, sizeof peer),
	    r->server == atomic_load(&the_server),
	    fstat(r->fd, &st) == 0 && S_ISSOCK(st.st_mode), !strcmp(mine, srv));
	return 0;
}

static void test_request_fields(void)
{
	static const ss_handler h = { .handle = h_request };
	ss_server *s = tu_server(&tcp_ops, &ss_sync_mixin, &h, NULL);
	ss_addr me = { .len = sizeof me.ss };
	char want[SS_ADDRSTRLEN + 16], name[SS_ADDRSTRLEN], buf[200];
	struct srv v = { .s = s };
	int fd;
	ssize_t n;

	atomic_store(&the_server, s);
	tu_serve_start(s, &v.th);
	fd = tu_connect(s);
	getsockname(fd, (struct sockaddr *)&me.ss, &me.len);
	me.family = me.ss.ss_family;
	shutdown(fd, SHUT_WR);
	n = tu_read_to_eof(fd, buf, sizeof buf - 1, TU_IO_TIMEOUT);
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
	snprintf(want, sizeof want, "%s 1 1 1", ss_addr_format(&me, name, sizeof name));
	is_str(buf, want, "ss_request_peer is the client's name; r->server is "
	       "the server; r->fd is the connection");
	down(&v);
}

/* ------------------------------------------------------------------ */
/* Datagrams                                                           */
/* ------------------------------------------------------------------ */

/* True if a datagram arrives on fd within ms. */
static bool dgram_waiting(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms) > 0;
}

/* Read a line and the rest, reply in five pieces. */
static int h_dgram_pieces(ss_request *r)
{
	char line[64], rest[64];
	ssize_t nl, nr, ne;

	nl = ss_read_line(r, line, sizeof line);
	nr = ss_read_some(r, rest, sizeof rest);
	if (nl < 0 || nr < 0)
		return nl < 0 ? (int)nl : (int)nr;
	ne = ss_read_some(r, rest + nr, 8);
	ss_write_all(r, "A:", 2);
	ss_write_all(r, line, (size_t)nl);
	ss_write_all(r, "|B:", 3);
	ss_write_all(r, rest, (size_t)nr);
	return say(r, "|C:%zd", ne) < 0 ? -EIO : 0;
}

static void test_dgram_pieces(void)
{
	static const ss_handler h = { .handle = h_dgram_pieces };
	struct srv v = up(&udp_ops, &ss_sync_mixin, &h);
	int fd = tu_connect(v.s);
	char buf[256];
	ssize_t n;

	send(fd, "line1\nrest-of-data", 18, 0);
	n = recv(fd, buf, sizeof buf - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	is_str(buf, "A:line1\n|B:rest-of-data|C:0",
	       "read_line + read_some of a datagram; five writes -> one reply");
	ok(!dgram_waiting(fd, 50), "no second datagram");
	close(fd);
	down(&v);
}

static int h_silent(ss_request *r)
{
	return 0;
}

static void test_dgram_empty(void)
{
	static const ss_handler h = { .handle = h_silent };
	struct srv v = up(&udp_ops, &ss_sync_mixin, &h);
	int fd = tu_connect(v.s);
	char buf[16];
	ssize_t n;

	send(fd, "x", 1, 0);
	ok(dgram_waiting(fd, 5000), "a handler that writes nothing: a reply comes");
	n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
	is_int(n, 0, "and it is an empty datagram");
	close(fd);
	down(&v);
}

/* Read the whole datagram, report its size and pattern check. */
static int h_dgram_big(ss_request *r)
{
	static const size_t cap = 70000;
	unsigned char *buf = malloc(cap);
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	n = ss_read_some(r, buf, cap);
	say(r, "%zd %s", n, n > 0 && fu_check(buf, (size_t)n, 0) == (size_t)n ?
	    "ok" : "BAD");
	free(buf);
	return 0;
}

static void test_dgram_big(void)
{
	static const ss_handler h = { .handle = h_dgram_big };
	struct srv v = up(&udp_ops, &ss_sync_mixin, &h);
	int fd = tu_connect(v.s);
	unsigned char *data = malloc(65507);
	char buf[64];
	ssize_t n;

	fu_fill(data, 65507, 0);
	n = send(fd, data, 65507, 0);
	is_int(n, 65507, "client sends a 65507-byte datagram");
	n = recv(fd, buf, sizeof buf - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	is_str(buf, "65507 ok", "the handler reads it whole (default max_packet_size)");
	free(data);
	close(fd);
	down(&v);
}

static atomic_int cut_seen;

/* Count datagrams that arrive cut to 100 bytes; echo the size. */
static int h_dgram_size(ss_request *r)
{
	if (r->packet_len == 100)
		atomic_fetch_add(&cut_seen, 1);
	return say(r, "%zu", r->packet_len) < 0 ? -EIO : 0;
}

static void test_dgram_too_big(void)
{
	static const ss_handler h = { .handle = h_dgram_size };
	ss_error e = { 0 };
	struct srv v = { .s = ss_server_new(&udp_ops, &ss_sync_mixin, "127.0.0.1:0",
					    &h, SS_DEFER_BIND, &e) };
	char data[200], msg[SS_ERRMSG_MAX], buf[32];
	int fd, err = 0;
	ssize_t n;

	if (!v.s)
		tap_bail("server: %s", e.msg);
	v.s->max_packet_size = 100;
	is_int(ss_server_bind(v.s), 0, "deferred bind");
	is_int(ss_server_activate(v.s), 0, "deferred activate");
	log_clear();
	tu_serve_start(v.s, &v.th);
	fd = tu_connect(v.s);
	memset(data, 'z', sizeof data);
	send(fd, data, sizeof data, 0);
	ok(tu_wait_until(log_has_one, NULL, 3.0),
	   "a 200-byte datagram over max_packet_size 100 reaches handle_error");
	log_get(&err, msg);
	ok(err == -EMSGSIZE || strcasestr(msg, "trunc"),
	   "reported as too big / truncated (err %d: '%s')", err, msg);
	is_int(atomic_load(&cut_seen), 0, "the handler never sees it cut");
	send(fd, data, 50, 0);
	n = recv(fd, buf, sizeof buf - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	is_str(buf, "50", "the next datagram is served");
	close(fd);
	down(&v);
}

int main(void)
{
	init_ops();
	test_read_line();
	test_read_exact();
	test_read_some();
	test_read_view();
	test_mixed();
	test_write_all();
	test_timeout();
	test_set_timeout();
	test_nodelay();
	test_request_fields();
	test_dgram_pieces();
	test_dgram_empty();
	test_dgram_big();
	test_dgram_too_big();
	return tap_done();
}
