/*
 * kinds.c - the four concrete servers as ops tables: TCP and UnixStream
 * (stream: bind, listen, accept4, half-close and close each connection)
 * and UDP and UnixDatagram (one datagram per request, the reply sent by
 * finish_request).  UnixDatagram is UDP's table with the unix socket
 * setup, as UnixDatagramServer derives from UDPServer in Python.
 */
#include "ss_internal.h"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* The address as text for messages. */
static const char *req_text(const ss_server *s, char *buf)
{
	return ss_addr_format(&s->requested, buf, SS_ADDRSTRLEN);
}

/* Record "<step> <addr>: <cause>" on the server and return err. */
static int fail(ss_server *s, int err, const char *step)
{
	char a[SS_ADDRSTRLEN];

	return ss__set_errno_msg(s->errmsg, err, "%s %s", step, req_text(s, a));
}

/* Create the server's socket with the options that must precede bind. */
static int make_socket(ss_server *s)
{
	int one = 1;
	int fd;

	fd = ss__sys.socket(s->requested.family, s->ops->socktype | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail(s, -errno, "socket");
	if (s->allow_reuse_address && s->requested.family != AF_UNIX &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0)
		goto out_close;
	if (s->allow_reuse_port && s->requested.family != AF_UNIX &&
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
		goto out_close;
	s->fd = fd;
	return 0;

out_close:
	one = fail(s, -errno, "setsockopt");
	ss__close(fd);
	return one;
}

/* bind, then learn the real address (the port chosen for port 0). */
static int bind_and_name(ss_server *s)
{
	int rc;

	if (ss__sys.bind(s->fd, (struct sockaddr *)&s->requested.ss, s->requested.len) < 0)
		return fail(s, -errno, "bind");
	s->address.len = sizeof s->address.ss;
	if (getsockname(s->fd, (struct sockaddr *)&s->address.ss, &s->address.len) < 0) {
		rc = fail(s, -errno, "getsockname");
		return rc;
	}
	s->address.family = s->address.ss.ss_family;
	return 0;
}

/* server_bind for inet kinds. */
static int inet_bind(ss_server *s)
{
	int rc = make_socket(s);

	if (rc < 0)
		return rc;
	rc = bind_and_name(s);
	if (rc < 0) {
		ss__close(s->fd);
		s->fd = -1;
	}
	return rc;
}

static bool is_abstract(const ss_addr *a)
{
	return ((const struct sockaddr_un *)&a->ss)->sun_path[0] == '\0';
}

/*
 * Before binding a unix path: a live server there is "address in use"; a
 * socket file nobody listens on (a dead server's) is removed; anything
 * that is not a socket is left alone and refused.
 */
static int clear_stale_socket(ss_server *s)
{
	const char *path = ((struct sockaddr_un *)&s->requested.ss)->sun_path;
	char a[SS_ADDRSTRLEN];
	struct stat st;
	int fd, rc;

	if (lstat(path, &st) < 0)
		return 0;	/* nothing there (or we let bind report it) */
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(s->errmsg, sizeof s->errmsg,
			 "bind %s: file exists and is not a socket; refusing to replace it",
			 req_text(s, a));
		return -EEXIST;
	}
	fd = ss__sys.socket(AF_UNIX, s->ops->socktype | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail(s, -errno, "socket");
	rc = ss__sys.connect(fd, (struct sockaddr *)&s->requested.ss, s->requested.len);
	rc = rc == 0 ? -EADDRINUSE : -errno;
	ss__close(fd);
	if (rc == -EADDRINUSE)
		return fail(s, rc, "bind");
	if (rc != -ECONNREFUSED)
		return 0;	/* cannot tell; let bind speak */
	if (unlink(path) < 0 && errno != ENOENT)
		return fail(s, -errno, "unlink stale socket");
	return 0;
}

/* server_bind for unix kinds: replace a stale file, bind, remember the
 * file we created so server_close removes it and nothing else. */
static int unix_bind(ss_server *s)
{
	const char *path = ((struct sockaddr_un *)&s->requested.ss)->sun_path;
	struct stat st;
	int rc;

	if (!is_abstract(&s->requested)) {
		rc = clear_stale_socket(s);
		if (rc < 0)
			return rc;
	}
	rc = make_socket(s);
	if (rc < 0)
		return rc;
	rc = bind_and_name(s);
	if (rc < 0)
		goto out_close;
	if (!is_abstract(&s->requested) && stat(path, &st) == 0) {
		ss__srv(s)->unlink_on_close = true;
		ss__srv(s)->sock_dev = st.st_dev;
		ss__srv(s)->sock_ino = st.st_ino;
	}
	return 0;

out_close:
	ss__close(s->fd);
	s->fd = -1;
	return rc;
}

/* server_activate for stream kinds: listen, non-blocking listener (a
 * connection reset before accept must not block the loop). */
static int stream_activate(ss_server *s)
{
	int fl;

	if (ss__sys.listen(s->fd, s->request_queue_size) < 0)
		return fail(s, -errno, "listen");
	fl = fcntl(s->fd, F_GETFL);
	if (fl < 0 || fcntl(s->fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return fail(s, -errno, "fcntl");
	return 0;
}

/* server_activate for datagram kinds: nothing to do. */
static int dgram_activate(ss_server *s)
{
	return 0;
}

/* Remove our unix socket file if it is still the one we bound (never in
 * a forked child, never someone else's replacement). */
static void unlink_own_socket(ss_server *s)
{
	const char *path = ((struct sockaddr_un *)&s->requested.ss)->sun_path;
	struct stat st;

	if (!ss__srv(s)->unlink_on_close || ss__srv(s)->is_child)
		return;
	ss__srv(s)->unlink_on_close = false;
	if (stat(path, &st) == 0 && st.st_dev == ss__srv(s)->sock_dev && st.st_ino == ss__srv(s)->sock_ino)
		unlink(path);
}

/* server_close: close the listening/datagram socket. */
static void base_server_close(ss_server *s)
{
	ss__close(s->fd);
	s->fd = -1;
}

static void unix_server_close(ss_server *s)
{
	base_server_close(s);
	unlink_own_socket(s);
}

static int base_fileno(const ss_server *s)
{
	return s->fd;
}

/* get_request for stream kinds: one accepted connection. */
static int stream_get_request(ss_server *s, ss_request **out)
{
	ss_request *r;
	ss_addr peer;
	int fd, one = 1;

	memset(&peer, 0, sizeof peer);
	peer.len = sizeof peer.ss;
	do
		fd = ss__sys.accept4(s->fd, (struct sockaddr *)&peer.ss, &peer.len,
				     SOCK_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -EAGAIN;
		return ss__set_errno_msg(s->errmsg, -errno, "accept");
	}
	peer.family = peer.ss.ss_family;
	r = ss__request_new(s, fd, &peer);
	if (!r) {
		ss__close(fd);
		return ss__set_errno_msg(s->errmsg, -ENOMEM, "accept");
	}
	if (s->handler->nodelay && peer.family != AF_UNIX)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	ss__plain_transport_init(r);
	*out = r;
	return 0;
}

/* The receive buffer, sized to max_packet_size (which may change until
 * the first datagram). */
static int packet_buffer(ss_server *s)
{
	if (ss__srv(s)->packet_buf && ss__srv(s)->packet_cap == s->max_packet_size)
		return 0;
	free(ss__srv(s)->packet_buf);
	ss__srv(s)->packet_cap = 0;
	ss__srv(s)->packet_buf = malloc(s->max_packet_size ? s->max_packet_size : 1);
	if (!ss__srv(s)->packet_buf)
		return -ENOMEM;
	ss__srv(s)->packet_cap = s->max_packet_size;
	return 0;
}

/* An inet address as far as where a reply to it goes: the family, the
 * address (an IPv4-mapped IPv6 address as the IPv4 one it is), the port
 * in network order, and a link-local IPv6 address's interface. */
struct inet_key {
	int family;
	unsigned char addr[16];
	in_port_t port;
	uint32_t scope_id;
};

static void inet_key(const ss_addr *a, struct inet_key *k)
{
	const struct sockaddr_in *v4 = (const struct sockaddr_in *)&a->ss;
	const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&a->ss;

	memset(k, 0, sizeof *k);
	if (a->family == AF_INET) {
		k->family = AF_INET;
		memcpy(k->addr, &v4->sin_addr, 4);
		k->port = v4->sin_port;
	} else if (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr)) {
		k->family = AF_INET;
		memcpy(k->addr, &v6->sin6_addr.s6_addr[12], 4);
		k->port = v6->sin6_port;
	} else {
		k->family = AF_INET6;
		memcpy(k->addr, &v6->sin6_addr, 16);
		k->port = v6->sin6_port;
		k->scope_id = v6->sin6_scope_id;
	}
}

/*
 * Is k's address one of this host's own?  Binding a socket to it says so
 * (EADDRNOTAVAIL: not ours) without a list of the interfaces;
 * IP_BIND_ADDRESS_NO_PORT keeps the probe from taking a port.  When the
 * probe cannot run (no descriptor left) the answer is yes: a dropped
 * datagram is the safe side of a loop.
 */
static bool is_own_address(const struct inet_key *k)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	int fd, rc, one = 1;

	memset(&ss, 0, sizeof ss);
	if (k->family == AF_INET) {
		v4->sin_family = AF_INET;
		memcpy(&v4->sin_addr, k->addr, 4);
		len = sizeof *v4;
	} else {
		v6->sin6_family = AF_INET6;
		memcpy(&v6->sin6_addr, k->addr, 16);
		v6->sin6_scope_id = k->scope_id;
		len = sizeof *v6;
	}
	fd = ss__sys.socket(k->family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return true;
	setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
	rc = ss__sys.bind(fd, (struct sockaddr *)&ss, len) == 0 ? 0 : -errno;
	ss__close(fd);
	return rc != -EADDRNOTAVAIL;
}

static bool is_wildcard(const struct inet_key *k)
{
	static const unsigned char zero[16];

	return memcmp(k->addr, zero, k->family == AF_INET ? 4 : 16) == 0;
}

/* Do two unix socket addresses name the same socket (a path, or an
 * abstract name)?  Unnamed ones name none. */
static bool same_unix_name(const ss_addr *a, const ss_addr *b)
{
	const size_t off = offsetof(struct sockaddr_un, sun_path);
	const char *pa = ((const struct sockaddr_un *)&a->ss)->sun_path;
	const char *pb = ((const struct sockaddr_un *)&b->ss)->sun_path;

	if (a->len <= off || b->len <= off)
		return false;
	if (pa[0] && pb[0])
		return strncmp(pa, pb, a->len - off) == 0;
	return a->len == b->len && memcmp(pa, pb, a->len - off) == 0;
}

/*
 * Why the datagram from peer must not be answered (its error code into
 * *code), or NULL when it may be.
 *
 * A reply goes to the datagram's source.  When that is the server's own
 * address the reply comes back as a new datagram, whose reply comes back
 * again: one spoofed datagram (or one the server sent itself) keeps the
 * server echoing to itself for ever, and two servers sharing an address
 * (SO_REUSEPORT) ping-pong.  To port 0 nothing can be sent at all.
 *
 * "Own address" means exactly "a reply would reach this socket": for a
 * server bound to one address, the source is that address and port; for
 * one bound to the wildcard (0.0.0.0, [::]) every address of the host is
 * its own, so the source port is the server's and the source address is
 * one of the host's.  Comparing with the datagram's destination
 * (IP_PKTINFO) would miss a source that is another address of the host;
 * comparing ports alone would drop the peers of symmetric protocols
 * (NTP talks from port 123 to port 123) on other hosts.  The address
 * probe only runs for datagrams from the server's own port, which
 * ordinary clients never send from.
 *
 * A unix datagram server's own path or abstract name is bound by no
 * other socket, so a datagram from it is the server's own.  Unnamed unix
 * clients are answered as before (the reply then fails with a message):
 * they cannot loop.
 */
static const char *reply_loops(const ss_server *s, const ss_addr *peer, int *code)
{
	struct inet_key src, own;
	bool mine;

	*code = -ELOOP;
	if (peer->family == AF_UNIX)
		return same_unix_name(peer, &s->address) ?
		       "its source is this server's own address" : NULL;
	inet_key(peer, &src);
	inet_key(&s->address, &own);
	if (src.port == 0) {
		*code = -EDESTADDRREQ;
		return "its source port is 0, there is nowhere to reply";
	}
	if (src.port != own.port)
		return NULL;
	if (is_wildcard(&own))
		mine = is_own_address(&src);
	else
		mine = src.family == own.family &&
		       memcmp(src.addr, own.addr, sizeof src.addr) == 0;
	return mine ? "its source is this server's own address" : NULL;
}

/*
 * Drop a datagram that must not be answered (why and code from
 * reply_loops): count it, and report the server's first one through
 * handle_error, naming the source; later ones are only counted, so a
 * flood of them cannot flood the log.  Never a reply.  Returns -EAGAIN:
 * nothing to handle, the loop goes on.
 */
static int drop_datagram(ss_server *s, const ss_addr *peer, const char *why, int code)
{
	char a[SS_ADDRSTRLEN];

	if (__atomic_fetch_add(ss__srv(s)->dropped, 1, __ATOMIC_RELAXED) != 0)
		return -EAGAIN;
	snprintf(s->errmsg, sizeof s->errmsg,
		 "datagram from %s dropped unanswered: %s (later ones are counted, not reported)",
		 ss_addr_format(peer, a, sizeof a), why);
	s->ops->handle_error(s, NULL, code);
	return -EAGAIN;
}

/* get_request for datagram kinds: one datagram, copied into the request
 * (threads and children keep their own).  A datagram larger than
 * max_packet_size is an error naming the sender, never silently cut; one
 * whose reply would loop back to the server, or go nowhere, is dropped
 * (reply_loops). */
static int dgram_get_request(ss_server *s, ss_request **out)
{
	char a[SS_ADDRSTRLEN];
	const char *why;
	ss_request *r;
	ss_addr peer;
	ssize_t n;
	int code;

	if (packet_buffer(s) < 0)
		return ss__set_errno_msg(s->errmsg, -ENOMEM, "recvfrom");
	memset(&peer, 0, sizeof peer);
	peer.len = sizeof peer.ss;
	do
		n = ss__sys.recvfrom(s->fd, ss__srv(s)->packet_buf, ss__srv(s)->packet_cap,
				     MSG_DONTWAIT | MSG_TRUNC,
				     (struct sockaddr *)&peer.ss, &peer.len);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return -EAGAIN;
		return ss__set_errno_msg(s->errmsg, -errno, "recvfrom");
	}
	peer.family = peer.ss.ss_family;
	if ((why = reply_loops(s, &peer, &code)))
		return drop_datagram(s, &peer, why, code);
	if ((size_t)n > ss__srv(s)->packet_cap) {
		snprintf(s->errmsg, sizeof s->errmsg,
			 "recvfrom %s: datagram of %zd bytes is larger than max_packet_size %zu; dropped",
			 ss_addr_format(&peer, a, sizeof a), n, ss__srv(s)->packet_cap);
		return -EMSGSIZE;
	}
	r = ss__request_new(s, s->fd, &peer);
	if (!r || !(r->packet = malloc(n ? (size_t)n : 1))) {
		ss_request_free(r);
		return ss__set_errno_msg(s->errmsg, -ENOMEM, "recvfrom");
	}
	memcpy(r->packet, ss__srv(s)->packet_buf, (size_t)n);
	r->packet_len = (size_t)n;
	*out = r;
	return 0;
}

/* close_request for stream kinds: release the connection. */
static void stream_close_request(ss_server *s, ss_request *r)
{
	ss__close(r->fd);
	r->fd = -1;
}

/* shutdown_request for stream kinds: say goodbye (FIN, or TLS
 * close_notify, through the transport), then close. */
static void stream_shutdown_request(ss_server *s, ss_request *r)
{
	if (r->fd >= 0 && ss__rq(r)->transport && ss__rq(r)->transport->ops->shutdown)
		ss__rq(r)->transport->ops->shutdown(ss__rq(r)->transport);
	s->ops->close_request(s, r);
}

/* Datagram requests share the server's socket: nothing to close.  The
 * reply went out in finish_request. */
static void dgram_close_request(ss_server *s, ss_request *r)
{
}

static void dgram_shutdown_request(ss_server *s, ss_request *r)
{
	s->ops->close_request(s, r);
}

#define COMMON_SLOTS							\
	.fileno = base_fileno,						\
	.verify_request = ss_base_verify_request,			\
	.process_request = ss_base_process_request,			\
	.finish_request = ss_base_finish_request,			\
	.handle_error = ss_base_handle_error,				\
	.handle_timeout = ss_base_handle_timeout,			\
	.service_actions = ss_base_service_actions

const ss_server_ops ss_tcp_server_ops = {
	.name = "tcp", .family = AF_INET, .socktype = SOCK_STREAM,
	.server_bind = inet_bind,
	.server_activate = stream_activate,
	.server_close = base_server_close,
	.get_request = stream_get_request,
	.shutdown_request = stream_shutdown_request,
	.close_request = stream_close_request,
	COMMON_SLOTS,
};

const ss_server_ops ss_unix_stream_server_ops = {
	.name = "unix_stream", .family = AF_UNIX, .socktype = SOCK_STREAM,
	.server_bind = unix_bind,
	.server_activate = stream_activate,
	.server_close = unix_server_close,
	.get_request = stream_get_request,
	.shutdown_request = stream_shutdown_request,
	.close_request = stream_close_request,
	COMMON_SLOTS,
};

const ss_server_ops ss_udp_server_ops = {
	.name = "udp", .family = AF_INET, .socktype = SOCK_DGRAM,
	.server_bind = inet_bind,
	.server_activate = dgram_activate,
	.server_close = base_server_close,
	.get_request = dgram_get_request,
	.shutdown_request = dgram_shutdown_request,
	.close_request = dgram_close_request,
	COMMON_SLOTS,
};

const ss_server_ops ss_unix_dgram_server_ops = {
	.name = "unix_dgram", .family = AF_UNIX, .socktype = SOCK_DGRAM,
	.server_bind = unix_bind,
	.server_activate = dgram_activate,
	.server_close = unix_server_close,
	.get_request = dgram_get_request,
	.shutdown_request = dgram_shutdown_request,
	.close_request = dgram_close_request,
	COMMON_SLOTS,
};
