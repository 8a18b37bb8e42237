/*
 * request.c - the life of a request, in one place: creation and freeing
 * (with its reader and writer buffers), its errors and peer, its
 * timeouts, running the handler on it (layer, setup, handle, finish),
 * sending what it has left to say (the writer's flush, the datagram
 * reply), the waits of a request running inline on the loop, and the
 * close-time cut.  The handler I/O (handlers/) reads and writes through
 * what is here; nothing here calls up into it.
 */
#include "ss_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#define BUF_SIZE	SS__BUF_SIZE

/* ------------------------------------------------------------------ */
/* Creation and freeing                                               */
/* ------------------------------------------------------------------ */

ss_request *ss__request_new(ss_server *s, int fd, const ss_addr *peer)
{
	struct ss__request *lr = calloc(1, sizeof *lr);
	ss_request *r;

	if (!lr)
		return NULL;
	r = &lr->pub;
	if (s->handler->state_size && !(r->state = calloc(1, s->handler->state_size))) {
		free(lr);
		return NULL;
	}
	r->server = s;
	r->fd = fd;
	r->client = *peer;
	return r;
}

ss_transport *ss_request_transport(ss_request *r)
{
	return ss__rq(r)->transport;
}

void ss_request_set_transport(ss_request *r, ss_transport *t)
{
	ss__rq(r)->transport = t;
}

void ss_request_free(ss_request *r)
{
	if (!r)
		return;
	if (ss__rq(r)->transport && ss__rq(r)->transport->ops->destroy)
		ss__rq(r)->transport->ops->destroy(ss__rq(r)->transport);
	if (r->fd >= 0 && !ss__is_dgram(r->server))
		ss__close(r->fd);
	ss__request_buffers_free(r);
	free(r->packet);
	free(r->state);
	free(ss__rq(r));
}

/* ------------------------------------------------------------------ */
/* Errors and the peer                                                */
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

void ss_request_clear_error(ss_request *r)
{
	r->errcode = 0;
	r->errmsg[0] = '\0';
}

/* Keep the first failure's message; name the step if nobody did. */
static int note(ss_request *r, int rc, const char *step)
{
	if (r->errcode == 0) {
		r->errcode = rc;
		ss__set_errno_msg(r->errmsg, rc, "%s", step);
	}
	return rc;
}

const char *ss_request_peer(const ss_request *r, char *buf, size_t len)
{
	return ss_addr_format(&r->client, buf, len);
}

/* ------------------------------------------------------------------ */
/* Timeouts                                                           */
/* ------------------------------------------------------------------ */

/* The handler's per-connection timeout as poll() milliseconds (-1: none). */
int ss__handler_timeout_ms(const ss_request *r)
{
	const ss_handler *h = r->server->handler;
	double t = h ? h->timeout : 0;

	return ss__timeout_ms(t <= 0 ? -1 : t);
}

/* The timeout currently applying to the request's I/O, in ms (-1: none). */
int ss__request_timeout_ms(const ss_request *r)
{
	if (ss__rq(r)->transport)
		return ss__rq(r)->transport->timeout_ms;
	if (ss__rq(r)->plain.ops)
		return ss__rq(r)->plain.timeout_ms;
	return ss__handler_timeout_ms(r);
}

/* Record a failed I/O step ("recv", "send") in the request, naming the
 * timeout for -ETIMEDOUT.  Returns err. */
int ss__io_error(ss_request *r, const char *what, int err)
{
	int ms = ss__request_timeout_ms(r);

	if (err == -ETIMEDOUT && ms >= 0)
		return ss_request_error(r, err, "%s: timed out after %.*f s", what,
					ms % 100 ? 3 : 1, ms / 1000.0);
	return ss_request_error(r, err, "%s: %s", what, strerror(-err));
}

void ss_request_set_timeout(ss_request *r, double seconds)
{
	int ms = ss__timeout_ms(seconds <= 0 ? -1 : seconds);

	if (!ss__rq(r)->plain.ops)
		ss__plain_transport_fill(r);
	ss__rq(r)->plain.timeout_ms = ms;
	if (ss__rq(r)->transport)
		ss__rq(r)->transport->timeout_ms = ms;
}

/* ------------------------------------------------------------------ */
/* Buffers                                                            */
/* ------------------------------------------------------------------ */

__thread struct ss__buffers *ss__buffers;

/* A BUF_SIZE stream buffer: a spare of the coroutine loop, or a new one. */
unsigned char *ss__buf_get(void)
{
	struct ss__buffers *b = ss__buffers;

	if (b && b->n)
		return b->spare[--b->n];
	return malloc(BUF_SIZE);
}

/* Give back a buffer of cap bytes: to the coroutine loop's spares if
 * there is room, else to free(). */
void ss__buf_put(void *p, size_t cap)
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
	ss__buf_put(ss__rq(r)->rbuf, ss__rq(r)->rcap);
	ss__buf_put(ss__rq(r)->wbuf, ss__rq(r)->wcap);
	ss__rq(r)->rbuf = ss__rq(r)->wbuf = NULL;
	ss__rq(r)->rcap = ss__rq(r)->rpos = ss__rq(r)->rlen = ss__rq(r)->wcap = ss__rq(r)->wlen = 0;
}

/* ------------------------------------------------------------------ */
/* Running the handler                                                */
/* ------------------------------------------------------------------ */

/*
 * Run the handler: setup; if it succeeded, handle, then finish (even when
 * handle failed), then flush the writer (stream) or send the reply
 * datagram, as Python's StreamRequestHandler/DatagramRequestHandler do in
 * finish.  Returns 0 or the first failure.
 */
int ss_base_finish_request(ss_server *s, ss_request *r)
{
	const ss_handler *h = s->handler;
	int rc = 0, rc2;

	if (ss__srv(s)->layer && (rc = ss__srv(s)->layer->wrap(r, ss__srv(s)->layer_data)) < 0)
		return note(r, rc, ss__srv(s)->layer->name);
	if (h->setup && (rc = h->setup(r)) < 0)
		return note(r, rc, "setup");
	ss__rq(r)->setup_ok = true;
	if (h->handle && (rc = h->handle(r)) < 0)
		note(r, rc, "handle");
	if (h->finish && (rc2 = h->finish(r)) < 0 && rc >= 0)
		rc = note(r, rc2, "finish");
	rc2 = ss__is_dgram(s) ? ss__send_reply(r) : ss_flush(r);
	if (rc2 < 0 && rc >= 0)
		rc = note(r, rc2, ss__is_dgram(s) ? "reply" : "flush");
	return rc < 0 ? rc : 0;
}

int ss__request_finish(ss_server *s, ss_request *r)
{
	int rc = s->ops->finish_request(s, r);

	if (rc < 0) {
		if (r->errcode == 0)
			note(r, rc, "request");
		s->ops->handle_error(s, r, rc);
	}
	return rc;
}

int ss_server_drop_request(ss_server *s, ss_request *r, int err, const char *what)
{
	if (what)
		ss_request_error(r, err, "%s: %s", what, strerror(-err));
	else if (r->errcode == 0)
		ss_request_error(r, err, "request not started: %s", strerror(-err));
	s->ops->handle_error(s, r, r->errcode);
	ss_server_shutdown_request(s, r);
	ss_request_free(r);
	return err;
}

int ss_server_run_request(ss_server *s, ss_request *r)
{
	int rc = ss__request_finish(s, r);

	ss_server_shutdown_request(s, r);
	return rc;
}

void ss_server_shutdown_request(ss_server *s, ss_request *r)
{
	if (ss__rq(r)->shut)
		return;
	ss__rq(r)->shut = true;
	s->ops->shutdown_request(s, r);
}

/* ------------------------------------------------------------------ */
/* What is left to say                                                */
/* ------------------------------------------------------------------ */

/* The stream request's transport (the plain one if none was attached), or
 * NULL once the connection is closed. */
ss_transport *ss__request_transport(ss_request *r)
{
	if (r->fd < 0)
		return NULL;
	if (!ss__rq(r)->transport)
		ss__plain_transport_init(r);
	return ss__rq(r)->transport;
}

/* Send len bytes through the transport, looping over short sends; *sent
 * says how many went out, also on failure.  Returns 0 or a negative errno
 * (recorded). */
int ss__send_all(ss_request *r, const unsigned char *p, size_t len,
		    size_t *sent)
{
	ss_transport *t = ss__request_transport(r);
	ssize_t n;

	*sent = 0;
	if (!t)
		return ss__io_error(r, "send", -EBADF);
	while (*sent < len) {
		n = t->ops->send(t, p + *sent, len - *sent);
		if (n < 0 && ss__request_was_cut(r) < 0)
			return -ECANCELED;
		if (n < 0)
			return ss__io_error(r, "send", (int)n);
		if (n == 0)	/* a transport that cannot progress */
			return ss__io_error(r, "send", -EIO);
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

	if (ss__is_dgram(r->server) || ss__rq(r)->wlen == 0)
		return 0;
	rc = ss__send_all(r, ss__rq(r)->wbuf, ss__rq(r)->wlen, &sent);
	if (sent < ss__rq(r)->wlen)
		memmove(ss__rq(r)->wbuf, ss__rq(r)->wbuf + sent, ss__rq(r)->wlen - sent);
	ss__rq(r)->wlen -= sent;
	return rc;
}

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
	const void *p = ss__rq(r)->wbuf ? (const void *)ss__rq(r)->wbuf : (const void *)empty;
	double deadline;
	int ms, rc;

	if (!ss__is_dgram(r->server))
		return 0;
	if (unnamed_unix(&r->client))
		return ss_request_error(r, -EDESTADDRREQ,
					"reply: client socket has no address to reply to");
	ms = ss__request_timeout_ms(r);
	deadline = ms < 0 ? -1 : ss__now() + ms / 1000.0;
	for (;;) {
		if (ss__sys.sendto(r->fd, p, ss__rq(r)->wlen, MSG_NOSIGNAL,
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

/* ------------------------------------------------------------------ */
/* Waiting inline on the loop                                         */
/* ------------------------------------------------------------------ */

/* The earlier of two monotonic deadlines (< 0: none). */
static double earlier(double a, double b)
{
	if (a < 0)
		return b;
	if (b < 0)
		return a;
	return a < b ? a : b;
}

/*
 * When a request inline on a stopping loop is cut (< 0: not stopping, or
 * no limit), and the grace it had: close_grace from the moment it saw the
 * stop, or the server's plan (a close's explicit grace, ss_server_cut, a
 * prefork parent's close), whichever comes first.
 */
static double inline_cut(ss_request *r, double *grace)
{
	ss_server *s = r->server;
	double cut, plan, g;

	if (!ss__stop_pending(s))
		return -1;
	if (ss__rq(r)->stop_deadline == 0)
		ss__rq(r)->stop_deadline = s->close_grace >= 0 ? ss__now() + s->close_grace : -1;
	cut = ss__rq(r)->stop_deadline;
	*grace = s->close_grace;
	plan = ss__cut_deadline(s, &g);
	if (plan >= 0 && (cut < 0 || plan < cut)) {
		cut = plan;
		*grace = g;
	}
	return cut;
}

int ss__wait_request(ss_request *r, short events, int timeout_ms)
{
	ss_server *s = r->server;
	double deadline, cut, grace = 0;
	struct pollfd p[2];
	int n;

	if (!ss__rq(r)->on_loop)
		return ss__wait_fd(r->fd, events, timeout_ms);
	deadline = timeout_ms < 0 ? -1 : ss__now() + timeout_ms / 1000.0;
	for (;;) {
		cut = inline_cut(r, &grace);
		if (cut >= 0 && ss__remaining_ms(cut) == 0)
			return ss__request_cut_error(r, grace);
		p[0] = (struct pollfd){ .fd = r->fd, .events = events };
		p[1] = (struct pollfd){ .fd = ss__srv(s)->wake_fd[0], .events = POLLIN };
		n = ss__sys.poll(p, 2, ss__remaining_ms(earlier(deadline, cut)));
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0 && p[0].revents)
			return 0;
		if (n > 0 && p[1].revents) {
			/* a stop, or news of the plan: look again */
			ss__wakeup_drain(ss__srv(s)->wake_fd[0]);
			ss__stop_seen(s);
		}
		if (deadline >= 0 && ss__remaining_ms(deadline) == 0)
			return -ETIMEDOUT;
	}
}

/* ------------------------------------------------------------------ */
/* The close-time cut                                                 */
/* ------------------------------------------------------------------ */

void ss__cut_mark_set(struct ss__cut_mark *m, double grace)
{
	m->grace = grace;
	__atomic_store_n(&m->cut, 1, __ATOMIC_RELEASE);
}

void ss__request_abort(ss_request *r, double grace)
{
	ss__cut_mark_set(&ss__rq(r)->cut, grace);
	if (r->fd >= 0 && !ss__is_dgram(r->server))
		ss__sys.shutdown(r->fd, SHUT_RDWR);
}

int ss__request_cut_error(ss_request *r, double grace)
{
	return ss_request_error(r, -ECANCELED,
		"server shutting down: request cut after its %.1f s grace period",
		grace < 0 ? 0 : grace);
}

int ss__request_was_cut(ss_request *r)
{
	const struct ss__cut_mark *m = ss__rq(r)->cut_mark ? ss__rq(r)->cut_mark : &ss__rq(r)->cut;

	if (!__atomic_load_n(&m->cut, __ATOMIC_ACQUIRE))
		return 0;
	return ss__request_cut_error(r, m->grace);
}
