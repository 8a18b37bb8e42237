/*
 * stream.c - the handler I/O: the buffered reader behind ss_read_* and
 * the writer behind ss_write_all, for stream requests (through the
 * request's transport, never the fd directly, so TLS and coroutine
 * transports plug in under the same handlers) and datagram requests
 * (reads consume the received datagram, writes build the reply that
 * request.c sends).  Every failure is recorded in the request ("recv:
 * Connection reset by peer"); the first one is kept.
 */
#include "ss_internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#define BUF_SIZE	SS__BUF_SIZE
#define REPLY_MIN	4096u			/* first datagram reply buffer */
#define REPLY_MAX	(4u * 1024u * 1024u)	/* largest datagram reply */

/* ------------------------------------------------------------------ */
/* Request helpers                                                     */
/* ------------------------------------------------------------------ */

/* ------------------------------------------------------------------ */
/* The plain-socket transport                                          */
/* ------------------------------------------------------------------ */

/* ------------------------------------------------------------------ */
/* Buffers                                                             */
/* ------------------------------------------------------------------ */

/* A coroutine's request about to wait for input gives its empty buffers
 * back to the loop, so an idle connection holds none. */
static void release_idle_buffers(ss_request *r)
{
	if (!ss__buffers)
		return;
	if (ss__rq(r)->rbuf && ss__rq(r)->rpos >= ss__rq(r)->rlen) {
		ss__buf_put(ss__rq(r)->rbuf, ss__rq(r)->rcap);
		ss__rq(r)->rbuf = NULL;
		ss__rq(r)->rcap = ss__rq(r)->rpos = ss__rq(r)->rlen = 0;
	}
	if (ss__rq(r)->wbuf && ss__rq(r)->wlen == 0) {
		ss__buf_put(ss__rq(r)->wbuf, ss__rq(r)->wcap);
		ss__rq(r)->wbuf = NULL;
		ss__rq(r)->wcap = 0;
	}
}

/* ------------------------------------------------------------------ */
/* Input                                                               */
/* ------------------------------------------------------------------ */

/*
 * Whether a recv on t that finds nothing waits in poll() or the loop
 * rather than blocking in the kernel: the plain transport with a timeout,
 * inline on the loop, or on a coroutine.  Then a recv on a socket known
 * to be empty costs a system call only to learn EAGAIN.
 */
static bool polls_for_input(const ss_request *r, const ss_transport *t)
{
	return t->ops == &ss_plain_transport_ops &&
	       (t->timeout_ms >= 0 || ss__rq(r)->on_loop || ss__wait_hook);
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

	if (ss__rq(r)->eof)
		return 0;
	if (!(t = ss__request_transport(r)))
		return ss__io_error(r, "recv", -EBADF);
	if (ss__rq(r)->wlen > 0)
		(void)ss_flush(r);
	if (ss__rq(r)->drained && polls_for_input(r, t)) {
		release_idle_buffers(r);
		if ((rc = ss__wait_request(r, POLLIN, t->timeout_ms)) < 0)
			return ss__io_error(r, "recv", rc);
	}
	if (!buf) {
		if (!ss__rq(r)->rbuf && !(ss__rq(r)->rbuf = ss__buf_get()))
			return ss_request_error(r, -ENOMEM, "recv: out of memory");
		ss__rq(r)->rcap = BUF_SIZE;
		buf = ss__rq(r)->rbuf;
		len = ss__rq(r)->rcap;
	}
	n = t->ops->recv(t, buf, len);
	ss__rq(r)->drained = n > 0 && (size_t)n < len;
	if (n == 0)
		ss__rq(r)->eof = true;
	if (n <= 0 && (rc = ss__request_was_cut(r)) < 0)
		return rc;	/* not the peer's EOF or error: close cut it */
	if (n < 0)
		ss__io_error(r, "recv", (int)n);
	return n;
}

/* Refill the (empty) reader buffer with one recv.  Returns the bytes now
 * buffered, 0 at EOF, or a negative errno. */
static ssize_t fill(ss_request *r)
{
	ssize_t n;

	ss__rq(r)->rpos = ss__rq(r)->rlen = 0;
	n = stream_recv(r, NULL, 0);
	if (n > 0)
		ss__rq(r)->rlen = (size_t)n;
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
		if (!r->packet || ss__rq(r)->rpos >= r->packet_len)
			return 0;
		*p = r->packet + ss__rq(r)->rpos;
		return (ssize_t)(r->packet_len - ss__rq(r)->rpos);
	}
	if (ss__rq(r)->rpos >= ss__rq(r)->rlen && (n = fill(r)) <= 0)
		return n;
	*p = ss__rq(r)->rbuf + ss__rq(r)->rpos;
	return (ssize_t)(ss__rq(r)->rlen - ss__rq(r)->rpos);
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
	if (!ss__is_dgram(r->server) && ss__rq(r)->rpos >= ss__rq(r)->rlen && len >= BUF_SIZE)
		return stream_recv(r, buf, len);
	if ((n = peek(r, &p)) <= 0)
		return n;
	if ((size_t)n > len)
		n = (ssize_t)len;
	memcpy(buf, p, (size_t)n);
	ss__rq(r)->rpos += (size_t)n;
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
	ss__rq(r)->rpos += (size_t)n;
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
		ss__rq(r)->rpos += k;
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

/* Buffer len bytes for the connection, flushing whenever the buffer
 * fills; a write at least a buffer long with nothing buffered goes out
 * directly.  Returns len or a negative errno. */
static ssize_t stream_write(ss_request *r, const unsigned char *p, size_t len)
{
	size_t left = len, k, sent;
	int rc;

	while (left > 0) {
		if (ss__rq(r)->wlen == 0 && left >= BUF_SIZE) {
			rc = ss__send_all(r, p, left, &sent);
			return rc < 0 ? rc : (ssize_t)len;
		}
		if (!ss__rq(r)->wbuf) {
			if (!(ss__rq(r)->wbuf = ss__buf_get()))
				return ss_request_error(r, -ENOMEM, "send: out of memory");
			ss__rq(r)->wcap = BUF_SIZE;
		}
		k = ss__rq(r)->wcap - ss__rq(r)->wlen < left ? ss__rq(r)->wcap - ss__rq(r)->wlen : left;
		memcpy(ss__rq(r)->wbuf + ss__rq(r)->wlen, p, k);
		ss__rq(r)->wlen += k;
		p += k;
		left -= k;
		if (ss__rq(r)->wlen == ss__rq(r)->wcap && (rc = ss_flush(r)) < 0)
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

	if (len > REPLY_MAX - ss__rq(r)->wlen)
		return ss_request_error(r, -EMSGSIZE,
					"reply: %zu bytes would exceed the %u-byte datagram reply limit",
					ss__rq(r)->wlen + len, REPLY_MAX);
	if (ss__rq(r)->wlen + len > ss__rq(r)->wcap) {
		cap = ss__rq(r)->wcap ? ss__rq(r)->wcap : REPLY_MIN;
		while (cap < ss__rq(r)->wlen + len)
			cap *= 2;
		if (cap > REPLY_MAX)
			cap = REPLY_MAX;
		if (!(nb = realloc(ss__rq(r)->wbuf, cap)))
			return ss_request_error(r, -ENOMEM, "reply: out of memory");
		ss__rq(r)->wbuf = nb;
		ss__rq(r)->wcap = cap;
	}
	memcpy(ss__rq(r)->wbuf + ss__rq(r)->wlen, p, len);
	ss__rq(r)->wlen += len;
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
