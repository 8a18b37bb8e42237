/*
 * ref_thread_echo.c - the reference for the threading model: a
 * hand-written echo server with one detached thread per connection and
 * blocking sockets, as anyone would write it in plain C.
 *
 *   ref_thread_echo ADDRESS            (127.0.0.1:0 picks a free port)
 *
 * Prints "listening on ADDRESS" when ready; stops on SIGINT / SIGTERM
 * (connections still open are cut when the process exits).
 */
#include "netutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE (16 * 1024)
#define STACK_SIZE (64 * 1024)	/* the buffer and a little more */

/* Send all n bytes; -1 on error. */
static int send_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* A connection's thread: echo until EOF or an error, then close.  The
 * thread owns the fd, passed in the pointer. */
static void *conn_thread(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[BUF_SIZE];
	ssize_t n;

	for (;;) {
		n = recv(fd, buf, sizeof buf, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0 || send_all(fd, buf, (size_t)n) < 0)
			break;
	}
	close(fd);
	return NULL;
}

int main(int argc, char **argv)
{
	char text[BN_ADDRSTRLEN];
	struct bn_addr bound;
	pthread_attr_t attr;
	sigset_t stop, old;
	pthread_t t;
	int lfd, fd;

	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: ref_thread_echo ADDRESS   (e.g. 127.0.0.1:0)\n");
		return 2;
	}
	bn_stop_on_signals();
	bn_raise_nofile(1 << 20);
	lfd = bn_listen(argv[1], SOCK_STREAM, &bound);
	if (lfd < 0)
		return 2;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, STACK_SIZE);
	/* Only the main thread takes the stop signals. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	printf("listening on %s\n", bn_format_addr(&bound, text, sizeof text));
	fflush(stdout);
	while (!bn_stopping) {
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE)
				usleep(10000);
			continue;
		}
		pthread_sigmask(SIG_BLOCK, &stop, &old);
		if (pthread_create(&t, &attr, conn_thread, (void *)(intptr_t)fd) != 0)
			close(fd);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	return 0;
}
