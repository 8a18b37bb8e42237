/*
 * stream.c - how a handler's bytes move: the plain-socket transport, the
 * buffered reader and writer behind ss_read_* / ss_write_all / ss_flush,
 * the datagram side of the same calls (reads consume the received
 * datagram, writes build the reply, ss__send_reply sends it) and the small
 * request helpers (timeout, error message, peer).
 *
 * Stream requests do all I/O through request->transport, never on the fd
 * directly, so TLS and coroutine transports plug in under the same
 * handlers.  Every failure is recorded in the request ("recv: Connection
 * reset by peer"); the first one is kept.
 */
#include "ss_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#define BUF_SIZE	(64u * 1024u)		/* stream reader / writer buffer */
#define REPLY_MIN	4096u			/* first datagram reply buffer */
#define REPLY_MAX	(4u * 1024u * 1024u)	/* largest datagram reply */

/* ------------------------------------------------------------------ */
/* Request helpers                                                     */
/* ------------------------------------------------------------------ */

int ss_request_error(ss_request *r, int err, const char *fmt, ...)
{
	va_list ap;

	if (r->errcode != 0)
		return err;		/* keep the first failure */
	r->errcode = err;
	va_start(ap, fmt);
	vsnprintf(r->errmsg, sizeof r->errmsg, fmt, ap);
	va_end(ap);
	return err;
}

const char *ss_request_peer(const ss_request *r, char *buf, size_t len)
{
	return ss_addr_format(&r->client, buf, len);
}

/* The handler's per-connection timeout as poll() milliseconds (-1: none). */
static int handler_timeout_ms(const ss_request *r)
{
	const ss_handler *h = r->server->handler;
	double t = h ? h->timeout : 0;

	return ss__timeout_ms(t <= 0 ? -1 : t);
}

/* The timeout currently applying to the request's I/O, in ms (-1: none). */
static int request_timeout_ms(const ss_request *r)
{
	if (r->transport)
		return r->transport->timeout_ms;
	if (r->plain.ops)
		return r->plain.timeout_ms;
	return handler_timeout_ms(r);
}

/* Record a failed I/O step ("recv", "send") in the request, naming the
 * timeout for -ETIMEDOUT.  Returns err. */
static int io_error(ss_request *r, const char *what, int err)
{
	int ms = request_timeout_ms(r);

	if (err == -ETIMEDOUT && ms >= 0)
		return ss_request_error(r, err, "%s: timed out after %.*f s", what,
					ms % 100 ? 3 : 1, ms / 1000.0);
	return ss_request_error(r, err, "%s: %s", what, strerror(-err));
}

/* ------------------------------------------------------------------ */
/* The plain-socket transport                                          */
/* ------------------------------------------------------------------ */

/*
 * One recv (events == POLLIN, into rbuf) or send (POLLOUT, from wbuf) on
 * the transport's fd, retrying EINTR.  With a timeout the call does not
 * block (MSG_DONTWAIT) and poll() waits for readiness within the timeout,
 * so a blocking socket never hangs past it; EAGAIN from a non-blocking
 * socket is waited for the same way.  Returns the count (0: EOF for
 * recv), -ETIMEDOUT, or a negative errno.
 */
static ssize_t plain_io(ss_transport *t, short events, void *rbuf,
			const void *wbuf, size_t len)
{
	int flags = events == POLLOUT ? MSG_NOSIGNAL : 0;
	double deadline = -1;
	ssize_t n;
	int rc, ms;

	if (t->timeout_ms >= 0 || t->request->on_loop || ss__wait_hook)
		flags |= MSG_DONTWAIT;	/* the wait below decides how long */
	for (;;) {
		if (events == POLLOUT)
			n = ss__sys.send(t->fd, wbuf, len, flags);
		else
			n = ss__sys.recv(t->fd, rbuf, len, flags);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		ms = -1;
		if (t->timeout_ms >= 0) {
			if (deadline < 0)
				deadline = ss__now() + t->timeout_ms / 1000.0;
			else if (ss__remaining_ms(deadline) == 0)
				return -ETIMEDOUT;
			ms = ss__remaining_ms(deadline);
		}
		if ((rc = ss__wait_request(t->request, events, ms)) < 0)
			return rc;
	}
}

static ssize_t plain_recv(ss_transport *t, void *buf, size_t len)
{
	return plain_io(t, POLLIN, buf, NULL, len);
}

static ssize_t plain_send(ss_transport *t, const void *buf, size_t len)
{
	return plain_io(t, POLLOUT, NULL, buf, len);
}

/* Half-close: the peer reads EOF after our last byte.  A peer that is
 * already gone (ENOTCONN) is not an error. */
static int plain_shutdown(ss_transport *t)
{
	if (ss__sys.shutdown(t->fd, SHUT_WR) < 0 && errno != ENOTCONN)
		return -errno;
	return 0;
}

/* Nothing of its own to free: the fd belongs to the request. */
static void plain_destroy(ss_transport *t)
{
}

const ss_transport_ops ss_plain_transport_ops = {
	.name = "plain",
	.recv = plain_recv,
	.send = plain_send,
	.shutdown = plain_shutdown,
	.destroy = plain_destroy,
};

/* Fill r->plain for the request's fd and the handler's timeout, without
 * attaching it (datagram requests keep their timeout there). */
static void plain_init(ss_request *r)
{
	r->plain.ops = &ss_plain_transport_ops;
	r->plain.request = r;
	r->plain.fd = r->fd;
	r->plain.timeout_ms = handler_timeout_ms(r);
}

void ss__plain_transport_init(ss_request *r)
{
	plain_init(r);
	r->transport = &r->plain;
	r->drained = true;	/* nothing read yet: wait before the first recv */
}

void ss_request_set_timeout(ss_request *r, double seconds)
{
	int ms = ss__timeout_ms(seconds <= 0 ? -1 : seconds);

	if (!r->plain.ops)
		plain_init(r);
	r->plain.timeout_ms = ms;
	if (r->transport)
		r->transport->timeout_ms = ms;
}

/* ------------------------------------------------------------------ */
/* Buffers                                                             */
/* ------------------------------------------------------------------ */

__thread struct ss__buffers *ss__buffers;

/* A BUF_SIZE stream buffer: a spare of the coroutine loop, or a new one. */
static unsigned char *buf_get(void)
{
	struct ss__buffers *b = ss__buffers;

	if (b && b->n)
		return b->spare[--b->n];
	return malloc(BUF_SIZE);
}

/* Give back a buffer of cap bytes: to the coroutine loop's spares if
 * there is room, else to free(). */
static void buf_put(void *p, size_t cap)
{
	struct ss__buffers *b = ss__buffers;

	if (p && b && cap == BUF_SIZE && b->n < SS__SPARE_BUFFERS)
		b->spare[b->n++] = p;
	else
		free(p);
}

void ss__buffers_clear(struct ss__buffers *b)
{
	while (b->n)
		free(b->spare[--b->n]);
}

void ss__request_buffers_free(ss_request *r)
{
	buf_put(r->rbuf, r->rcap);
	buf_put(r->wbuf, r->wcap);
	r->rbuf = r->wbuf = NULL;
	r->rcap = r->rpos = r->rlen = r->wcap = r->wlen = 0;
}

/* A coroutine's request about to wait for input gives its empty buffers
 * back to the loop, so an idle connection holds none. */
static void release_idle_buffers(ss_request *r)
{
	if (!ss__buffers)
		return;
	if (r->rbuf && r->rpos >= r->rlen) {
		buf_put(r->rbuf, r->rcap);
		r->rbuf = NULL;
		r->rcap = r->rpos = r->rlen = 0;
	}
	if (r->wbuf && r->wlen == 0) {
		buf_put(r->wbuf, r->wcap);
		r->wbuf = NULL;
		r->wcap = 0;
	}
}

/* ------------------------------------------------------------------ */
/* Input                                                               */
/* ------------------------------------------------------------------ */

/* The stream request's transport (the plain one if none was attached), or
 * NULL once the connection is closed. */
static ss_transport *stream_transport(ss_request *r)
{
	if (r->fd < 0)
		return NULL;
	if (!r->transport)
		ss__plain_transport_init(r);
	return r->transport;
}

/*
 * Whether a recv on t that finds nothing waits in poll() or the loop
 * rather than blocking in the kernel: the plain transport with a timeout,
 * inline on the loop, or on a coroutine.  Then a recv on a socket known
 * to be empty costs a system call only to learn EAGAIN.
 */
static bool polls_for_input(const ss_request *r, const ss_transport *t)
{
	return t->ops == &ss_plain_transport_ops &&
	       (t->timeout_ms >= 0 || r->on_loop || ss__wait_hook);
}

/*
 * One recv from the connection into buf, or into the reader's buffer
 * (allocated here) when buf is NULL.  What the writer holds goes out
 * first: a handler about to wait for the peer must not keep the peer
 * waiting for an answer still in our buffer (a failed flush keeps its
 * bytes and error for the next ss_flush and does not stop the read).
 * When the last recv emptied the socket (a new connection counts as
 * empty) and the transport polls, the request waits for input before the
 * recv instead of after a failed one, and on a coroutine hands its empty
 * buffers back meanwhile.  Returns the count, 0 at EOF (then and ever
 * after), or a negative errno (recorded).
 */
static ssize_t stream_recv(ss_request *r, void *buf, size_t len)
{
	ss_transport *t;
	ssize_t n;
	int rc;

	if (r->eof)
		return 0;
	if (!(t = stream_transport(r)))
		return io_error(r, "recv", -EBADF);
	if (r->wlen > 0)
		(void)ss_flush(r);
	if (r->drained && polls_for_input(r, t)) {
		release_idle_buffers(r);
		if ((rc = ss__wait_request(r, POLLIN, t->timeout_ms)) < 0)
			return io_error(r, "recv", rc);
	}
	if (!buf) {
		if (!r->rbuf && !(r->rbuf = buf_get()))
			return ss_request_error(r, -ENOMEM, "recv: out of memory");
		r->rcap = BUF_SIZE;
		buf = r->rbuf;
		len = r->rcap;
	}
	n = t->ops->recv(t, buf, len);
	r->drained = n > 0 && (size_t)n < len;
	if (n == 0)
		r->eof = true;
	if (n <= 0 && (rc = ss__request_was_cut(r)) < 0)
		return rc;	/* not the peer's EOF or error: close cut it */
	if (n < 0)
		io_error(r, "recv", (int)n);
	return n;
}

/* Refill the (empty) reader buffer with one recv.  Returns the bytes now
 * buffered, 0 at EOF, or a negative errno. */
static ssize_t fill(ss_request *r)
{
	ssize_t n;

	r->rpos = r->rlen = 0;
	n = stream_recv(r, NULL, 0);
	if (n > 0)
		r->rlen = (size_t)n;
	return n;
}

/*
 * Point *p at the next unread input without consuming it: the rest of the
 * datagram, or the reader buffer (refilled with one recv when empty).
 * Returns the bytes available (> 0), 0 at the end of the input, or a
 * negative errno.
 */
static ssize_t peek(ss_request *r, const unsigned char **p)
{
	ssize_t n;

	if (ss__is_dgram(r->server)) {
		if (!r->packet || r->rpos >= r->packet_len)
			return 0;
		*p = r->packet + r->rpos;
		return (ssize_t)(r->packet_len - r->rpos);
	}
	if (r->rpos >= r->rlen && (n = fill(r)) <= 0)
		return n;
	*p = r->rbuf + r->rpos;
	return (ssize_t)(r->rlen - r->rpos);
}

ssize_t ss_read_some(ss_request *r, void *buf, size_t len)
{
	const unsigned char *p;
	ssize_t n;

	if (len == 0)
		return 0;
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	/* A large read with nothing buffered skips the copy. */
	if (!ss__is_dgram(r->server) && r->rpos >= r->rlen && len >= BUF_SIZE)
		return stream_recv(r, buf, len);
	if ((n = peek(r, &p)) <= 0)
		return n;
	if ((size_t)n > len)
		n = (ssize_t)len;
	memcpy(buf, p, (size_t)n);
	r->rpos += (size_t)n;
	return n;
}

ssize_t ss_read_view(ss_request *r, const void **data, size_t max)
{
	const unsigned char *p;
	ssize_t n;

	if (max == 0)
		return 0;
	if ((n = peek(r, &p)) <= 0)
		return n;
	if ((size_t)n > max)
		n = (ssize_t)max;
	*data = p;
	r->rpos += (size_t)n;
	return n;
}

ssize_t ss_read_exact(ss_request *r, void *buf, size_t len)
{
	unsigned char *out = buf;
	size_t got = 0;
	ssize_t n;

	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	while (got < len) {
		n = ss_read_some(r, out + got, len - got);
		if (n < 0)
			return n;
		if (n == 0)
			break;		/* EOF first: return what came */
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/*
 * Read a line into buf (max bytes with the NUL).  Input is consumed as it
 * is copied: on an I/O error the partial line is lost (buf holds it,
 * NUL-terminated), as with Python's buffered readline.
 */
ssize_t ss_read_line(ss_request *r, char *buf, size_t max)
{
	const unsigned char *p, *nl;
	size_t got = 0, room, k;
	ssize_t n;

	if (!buf || max < 2) {
		if (buf && max)
			buf[0] = '\0';
		return ss_request_error(r, -EINVAL,
					"read_line: a buffer of %zu bytes holds no line", max);
	}
	room = max - 1 > SSIZE_MAX ? SSIZE_MAX : max - 1;
	while (got < room) {
		if ((n = peek(r, &p)) <= 0) {
			buf[got] = '\0';
			return n < 0 ? n : (ssize_t)got;	/* EOF: last line */
		}
		k = (size_t)n < room - got ? (size_t)n : room - got;
		if ((nl = memchr(p, '\n', k)))
			k = (size_t)(nl - p) + 1;
		memcpy(buf + got, p, k);
		r->rpos += k;
		got += k;
		if (nl) {
			buf[got] = '\0';
			return (ssize_t)got;
		}
	}
	buf[got] = '\0';
	return ss_request_error(r, -EMSGSIZE, "line longer than %zu bytes", room);
}

/* ------------------------------------------------------------------ */
/* Output                                                              */
/* ------------------------------------------------------------------ */

/* Send len bytes through the transport, looping over short sends; *sent
 * says how many went out, also on failure.  Returns 0 or a negative errno
 * (recorded). */
static int send_all(ss_request *r, const unsigned char *p, size_t len,
		    size_t *sent)
{
	ss_transport *t = stream_transport(r);
	ssize_t n;

	*sent = 0;
	if (!t)
		return io_error(r, "send", -EBADF);
	while (*sent < len) {
		n = t->ops->send(t, p + *sent, len - *sent);
		if (n < 0 && ss__request_was_cut(r) < 0)
			return -ECANCELED;
		if (n < 0)
			return io_error(r, "send", (int)n);
		if (n == 0)	/* a transport that cannot progress */
			return io_error(r, "send", -EIO);
		*sent += (size_t)n;
	}
	return 0;
}

/* Send what the writer holds.  On failure the unsent bytes stay buffered
 * (a later flush after a timeout may still deliver them).  Returns 0 or a
 * negative errno. */
int ss_flush(ss_request *r)
{
	size_t sent;
	int rc;

	if (ss__is_dgram(r->server) || r->wlen == 0)
		return 0;
	rc = send_all(r, r->wbuf, r->wlen, &sent);
	if (sent < r->wlen)
		memmove(r->wbuf, r->wbuf + sent, r->wlen - sent);
	r->wlen -= sent;
	return rc;
}

/* Buffer len bytes for the connection, flushing whenever the buffer
 * fills; a write at least a buffer long with nothing buffered goes out
 * directly.  Returns len or a negative errno. */
static ssize_t stream_write(ss_request *r, const unsigned char *p, size_t len)
{
	size_t left = len, k, sent;
	int rc;

	while (left > 0) {
		if (r->wlen == 0 && left >= BUF_SIZE) {
			rc = send_all(r, p, left, &sent);
			return rc < 0 ? rc : (ssize_t)len;
		}
		if (!r->wbuf) {
			if (!(r->wbuf = buf_get()))
				return ss_request_error(r, -ENOMEM, "send: out of memory");
			r->wcap = BUF_SIZE;
		}
		k = r->wcap - r->wlen < left ? r->wcap - r->wlen : left;
		memcpy(r->wbuf + r->wlen, p, k);
		r->wlen += k;
		p += k;
		left -= k;
		if (r->wlen == r->wcap && (rc = ss_flush(r)) < 0)
			return rc;
	}
	return (ssize_t)len;
}

/* Append len bytes to the datagram reply, growing its buffer by doubling
 * up to REPLY_MAX.  Returns len, -EMSGSIZE or -ENOMEM (recorded). */
static ssize_t dgram_write(ss_request *r, const void *p, size_t len)
{
	unsigned char *nb;
	size_t cap;

	if (len > REPLY_MAX - r->wlen)
		return ss_request_error(r, -EMSGSIZE,
					"reply: %zu bytes would exceed the %u-byte datagram reply limit",
					r->wlen + len, REPLY_MAX);
	if (r->wlen + len > r->wcap) {
		cap = r->wcap ? r->wcap : REPLY_MIN;
		while (cap < r->wlen + len)
			cap *= 2;
		if (cap > REPLY_MAX)
			cap = REPLY_MAX;
		if (!(nb = realloc(r->wbuf, cap)))
			return ss_request_error(r, -ENOMEM, "reply: out of memory");
		r->wbuf = nb;
		r->wcap = cap;
	}
	memcpy(r->wbuf + r->wlen, p, len);
	r->wlen += len;
	return (ssize_t)len;
}

ssize_t ss_write_all(ss_request *r, const void *buf, size_t len)
{
	if (len == 0)
		return 0;
	if (len > SSIZE_MAX)
		return ss_request_error(r, -EINVAL, "send: %zu bytes is too long", len);
	if (ss__is_dgram(r->server))
		return dgram_write(r, buf, len);
	return stream_write(r, buf, len);
}

/* ------------------------------------------------------------------ */
/* The datagram reply                                                  */
/* ------------------------------------------------------------------ */

/* A unix peer that never bound its socket: there is nowhere to reply. */
static bool unnamed_unix(const ss_addr *a)
{
	return a->family == AF_UNIX &&
	       a->len <= offsetof(struct sockaddr_un, sun_path);
}

/* Record "sendto CLIENT: cause" and return err. */
static int reply_error(ss_request *r, int err)
{
	char a[SS_ADDRSTRLEN];

	return ss_request_error(r, err, "sendto %s: %s",
				ss_request_peer(r, a, sizeof a), strerror(-err));
}

/*
 * Send the reply built by the handler's writes to the client as one
 * datagram, even an empty one (as Python's DatagramRequestHandler does).
 * EINTR is retried; EAGAIN is waited for within the request's timeout.
 * Stream requests have nothing to send here.  Returns 0 or a negative
 * errno (recorded).
 */
int ss__send_reply(ss_request *r)
{
	static const unsigned char empty[1];
	const void *p = r->wbuf ? (const void *)r->wbuf : (const void *)empty;
	double deadline;
	int ms, rc;

	if (!ss__is_dgram(r->server))
		return 0;
	if (unnamed_unix(&r->client))
		return ss_request_error(r, -EDESTADDRREQ,
					"reply: client socket has no address to reply to");
	ms = request_timeout_ms(r);
	deadline = ms < 0 ? -1 : ss__now() + ms / 1000.0;
	for (;;) {
		if (ss__sys.sendto(r->fd, p, r->wlen, MSG_NOSIGNAL,
				   (const struct sockaddr *)&r->client.ss,
				   r->client.len) >= 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return reply_error(r, -errno);
		if (deadline >= 0 && ss__remaining_ms(deadline) == 0)
			return reply_error(r, -ETIMEDOUT);
		if ((rc = ss__wait_fd(r->fd, POLLOUT, ss__remaining_ms(deadline))) < 0)
			return reply_error(r, rc);
	}
}
