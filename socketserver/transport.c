/*
 * transport.c - the plain-socket transport: recv/send on the connection
 * with MSG_NOSIGNAL, EINTR retried, waits bounded by the request's
 * timeout (in poll(), on the loop for a request inline there, or in the
 * coroutine loop through ss__wait_hook).  Layers such as TLS put their own
 * transport over it; the reader and writer only ever call a transport.
 */
#include "ss_internal.h"

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

	if (t->timeout_ms >= 0 || ss__rq(t->request)->on_loop || ss__wait_hook)
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
void ss__plain_transport_fill(ss_request *r)
{
	ss__rq(r)->plain.ops = &ss_plain_transport_ops;
	ss__rq(r)->plain.request = r;
	ss__rq(r)->plain.fd = r->fd;
	ss__rq(r)->plain.timeout_ms = ss__handler_timeout_ms(r);
}

void ss__plain_transport_init(ss_request *r)
{
	ss__plain_transport_fill(r);
	ss__rq(r)->transport = &ss__rq(r)->plain;
	ss__rq(r)->drained = true;	/* nothing read yet: wait before the first recv */
}
