/*
 * ref_epoll_echo.c - the reference the benchmark measures every model
 * against: a hand-written single-thread echo server on level-triggered
 * epoll with non-blocking sockets, the most one core of this machine does.
 * With -u it echoes UDP datagrams from the same kind of loop instead.
 *
 *   ref_epoll_echo [-u] ADDRESS        (127.0.0.1:0 picks a free port)
 *
 * Prints "listening on ADDRESS" when ready; stops on SIGINT / SIGTERM.
 */
#include "netutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define BUF_SIZE (64 * 1024)

/* Bytes a connection could not send yet (the peer's window was full). */
struct pending {
	char *data;
	size_t len, off;
};

static unsigned char buf[BUF_SIZE];
static struct pending *pend;	/* indexed by fd; grows with the fds */
static size_t npend;

/* The pending slot of fd, growing the table; NULL if out of memory. */
static struct pending *pending_of(int fd)
{
	if ((size_t)fd >= npend) {
		size_t n = (size_t)fd * 2 + 64;
		struct pending *p = realloc(pend, n * sizeof *p);

		if (!p)
			return NULL;
		memset(p + npend, 0, (n - npend) * sizeof *p);
		pend = p;
		npend = n;
	}
	return &pend[fd];
}

/* Close a connection and drop what it still had to send. */
static void drop(int ep, int fd)
{
	struct pending *p = pending_of(fd);

	epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
	if (p) {
		free(p->data);
		memset(p, 0, sizeof *p);
	}
	close(fd);
}

/* Accept every connection waiting on the listener. */
static void accept_all(int ep, int lfd)
{
	struct epoll_event ev = { .events = EPOLLIN };
	int fd;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		ev.data.fd = fd;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0)
			close(fd);
	}
}

/*
 * Send what fd still owes (p), then n bytes of buf.  What does not fit is
 * kept and EPOLLOUT asked for; reading pauses until it is gone.  Returns
 * 0, or -1 if the connection must be dropped.
 */
static int send_or_keep(int ep, int fd, struct pending *p, size_t n)
{
	struct epoll_event ev = { .data.fd = fd };
	ssize_t w;

	while (p->len > p->off) {
		w = send(fd, p->data + p->off, p->len - p->off, MSG_NOSIGNAL);
		if (w < 0)
			return errno == EAGAIN ? 0 : -1;
		p->off += (size_t)w;
	}
	if (p->data) {
		free(p->data);
		p->data = NULL;
		p->len = p->off = 0;
		ev.events = EPOLLIN;
		epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
	}
	if (n == 0)
		return 0;
	w = send(fd, buf, n, MSG_NOSIGNAL);
	if (w < 0 && errno != EAGAIN)
		return -1;
	if (w < 0)
		w = 0;
	if ((size_t)w < n) {
		p->len = n - (size_t)w;
		p->data = malloc(p->len);
		if (!p->data)
			return -1;
		memcpy(p->data, buf + w, p->len);
		ev.events = EPOLLOUT;
		epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
	}
	return 0;
}

/* One ready connection: read what is there and echo it. */
static void serve_conn(int ep, int fd, unsigned events)
{
	struct pending *p = pending_of(fd);
	ssize_t n;

	if (!p)
		return drop(ep, fd);
	if (events & EPOLLOUT || p->data) {
		if (send_or_keep(ep, fd, p, 0) < 0)
			return drop(ep, fd);
		if (p->data)
			return;
	}
	n = recv(fd, buf, sizeof buf, 0);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		return drop(ep, fd);
	if (n > 0 && send_or_keep(ep, fd, p, (size_t)n) < 0)
		drop(ep, fd);
}

/* The TCP server: one loop over the listener and every connection. */
static int serve_tcp(int lfd)
{
	struct epoll_event evs[MAX_EVENTS], ev = { .events = EPOLLIN, .data.fd = lfd };
	int ep = epoll_create1(EPOLL_CLOEXEC), n, i;

	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) < 0) {
		perror("ref_epoll_echo: epoll");
		return 1;
	}
	while (!bn_stopping) {
		n = epoll_wait(ep, evs, MAX_EVENTS, -1);
		for (i = 0; i < n; i++) {
			if (evs[i].data.fd == lfd)
				accept_all(ep, lfd);
			else
				serve_conn(ep, evs[i].data.fd, evs[i].events);
		}
	}
	return 0;
}

/* The UDP server: every datagram goes straight back to its sender. */
static int serve_udp(int fd)
{
	struct epoll_event evs[1], ev = { .events = EPOLLIN, .data.fd = fd };
	struct sockaddr_storage peer;
	socklen_t plen;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	ssize_t n;

	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		perror("ref_epoll_echo: epoll");
		return 1;
	}
	while (!bn_stopping) {
		if (epoll_wait(ep, evs, 1, -1) < 1)
			continue;
		for (;;) {
			plen = sizeof peer;
			n = recvfrom(fd, buf, sizeof buf, 0, (struct sockaddr *)&peer, &plen);
			if (n < 0)
				break;
			sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&peer, plen);
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	char text[BN_ADDRSTRLEN];
	struct bn_addr bound;
	bool udp = argc == 3 && strcmp(argv[1], "-u") == 0;
	int fd;

	if (argc != 2 + udp || argv[1 + udp][0] == '-') {
		fprintf(stderr, "usage: ref_epoll_echo [-u] ADDRESS   "
			"(e.g. 127.0.0.1:0; -u: UDP)\n");
		return 2;
	}
	bn_stop_on_signals();
	bn_raise_nofile(1 << 20);
	fd = bn_listen(argv[1 + udp], (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK,
		       &bound);
	if (fd < 0)
		return 2;
	printf("listening on %s\n", bn_format_addr(&bound, text, sizeof text));
	fflush(stdout);
	return udp ? serve_udp(fd) : serve_tcp(fd);
}
