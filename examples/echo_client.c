/*
 * echo_client.c - talk to an echo server: send a message, print the reply.
 *
 *   echo_client [-t tcp|udp|unix_stream|unix_dgram] [-w SECONDS] ADDRESS [WORDS...]
 *
 * The message is WORDS joined by spaces plus "\n", or all of stdin when
 * there are no words.  Stream kinds write it while printing what comes
 * back, half-close, and read until the server closes.  Datagram kinds
 * send it as one datagram and print the one reply, waiting at most -w
 * seconds.  Errors are one line on stderr and exit status 1.
 */
#include <socketserver.h>

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* A kind of server the client can talk to. */
struct kind {
	const char *name;
	int family;		/* the syntax for ss_addr_parse */
	int socktype;
	size_t max_dgram;	/* datagram kinds: the largest message */
};

static const struct kind kinds[] = {
	{ "tcp",	 AF_UNSPEC, SOCK_STREAM, 0 },
	{ "udp",	 AF_UNSPEC, SOCK_DGRAM,  65507 },
	{ "unix_stream", AF_UNIX,   SOCK_STREAM, 0 },
	{ "unix_dgram",	 AF_UNIX,   SOCK_DGRAM,  65536 },
};

#define REPLY_MAX 65536		/* the largest datagram reply we take */

/* Print "echo_client: <message>" on stderr and exit 1. */
static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	fputs("echo_client: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void usage(FILE *f)
{
	fputs("usage: echo_client [-t tcp|udp|unix_stream|unix_dgram] [-w SECONDS]"
	      " ADDRESS [WORDS...]\n"
	      "Send WORDS joined by spaces plus a newline (with no WORDS: all of\n"
	      "standard input) to an echo server at ADDRESS and print the reply.\n"
	      "  -t KIND  the server's kind (default tcp for HOST:PORT,\n"
	      "           unix_stream for a path with '/' or an @abstract name)\n"
	      "  -w SECS  datagram kinds: wait this long for the reply (default 5)\n"
	      "  -h       print this help and exit\n", f);
}

/* Bad usage: the reason and the usage on stderr, exit 2.  The reason
 * quotes the command line, so it is escaped and stays one line. */
static void __attribute__((noreturn, format(printf, 1, 2)))
bad_usage(const char *fmt, ...)
{
	char why[256], text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	ss_escape(text, sizeof text, why, strlen(why));
	fprintf(stderr, "echo_client: %s\n", text);
	usage(stderr);
	exit(2);
}

/* Monotonic clock, seconds. */
static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Write all of buf to stdout, or die. */
static void write_out(const void *buf, size_t len)
{
	const char *p = buf;
	ssize_t n;

	while (len > 0) {
		n = write(STDOUT_FILENO, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("write stdout: %s", strerror(errno));
		p += n;
		len -= (size_t)n;
	}
}

/* WORDS joined by spaces plus "\n", in a new buffer; *len its length. */
static char *join_words(char **words, int n, size_t *len)
{
	size_t total = 1;
	char *msg, *p;
	int i;

	for (i = 0; i < n; i++)
		total += strlen(words[i]) + 1;
	msg = malloc(total);
	if (!msg)
		die("out of memory");
	p = msg;
	for (i = 0; i < n; i++) {
		if (i > 0)
			*p++ = ' ';
		p = stpcpy(p, words[i]);
	}
	*p++ = '\n';
	*len = (size_t)(p - msg);
	return msg;
}

/* All of stdin, at most max bytes (more is an error); *len its length. */
static char *read_stdin(size_t max, size_t *len)
{
	char *buf = malloc(max + 1);
	size_t got = 0;
	ssize_t n;

	if (!buf)
		die("out of memory");
	while (got <= max) {
		n = read(STDIN_FILENO, buf + got, max + 1 - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("read stdin: %s", strerror(errno));
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got > max)
		die("message too long for one datagram (more than %zu bytes)", max);
	*len = got;
	return buf;
}

/*
 * connect() retrying EINTR: an interrupted connect goes on in the
 * background, so wait for it and fetch its result.  0 or -1 with errno.
 */
static int connect_eintr(int fd, const ss_addr *a)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	socklen_t len;
	int err = 0;

	if (connect(fd, (const struct sockaddr *)&a->ss, a->len) == 0)
		return 0;
	if (errno != EINTR)
		return -1;
	while (poll(&p, 1, -1) < 0)
		if (errno != EINTR)
			return -1;
	len = sizeof err;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -1;
	errno = err;
	return err ? -1 : 0;
}

/*
 * A socket of the kind connected to a.  A unix datagram socket is first
 * autobound to an abstract name so the server has somewhere to reply.
 */
static int open_socket(const struct kind *k, const ss_addr *a, const char *where)
{
	struct sockaddr_un self = { .sun_family = AF_UNIX };
	int fd;

	fd = socket(a->family, k->socktype | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket %s: %s", where, strerror(errno));
	if (a->family == AF_UNIX && k->socktype == SOCK_DGRAM &&
	    bind(fd, (struct sockaddr *)&self, sizeof(sa_family_t)) < 0)
		die("bind (autobind) for %s: %s", where, strerror(errno));
	if (connect_eintr(fd, a) < 0)
		die("connect %s: %s", where, strerror(errno));
	return fd;
}

/*
 * Stream kinds: send msg (or stdin when msg is NULL) while printing what
 * comes back, half-close when all is sent, and read until EOF.  Reading
 * and writing in one poll loop keeps a large message from deadlocking
 * against a server that echoes while it reads.
 */
static void run_stream(int fd, const char *msg, size_t len, const char *where)
{
	static char in[65536], out[65536];
	bool in_eof = msg != NULL, shut = false;
	struct pollfd p[2];
	ssize_t n;

	for (;;) {
		if (len == 0 && in_eof && !shut) {
			if (shutdown(fd, SHUT_WR) < 0)
				die("shutdown %s: %s", where, strerror(errno));
			shut = true;
		}
		p[0] = (struct pollfd){ .fd = fd,
					.events = POLLIN | (len ? POLLOUT : 0) };
		p[1] = (struct pollfd){ .fd = len || in_eof ? -1 : STDIN_FILENO,
					.events = POLLIN };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll: %s", strerror(errno));
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			n = recv(fd, out, sizeof out, MSG_DONTWAIT);
			if (n == 0)
				return;
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				die("recv %s: %s", where, strerror(errno));
			if (n > 0)
				write_out(out, (size_t)n);
		}
		if (len && (p[0].revents & POLLOUT)) {
			n = send(fd, msg, len, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				die("send %s: %s", where, strerror(errno));
			if (n > 0) {
				msg += n;
				len -= (size_t)n;
			}
		}
		if (p[1].revents) {
			n = read(STDIN_FILENO, in, sizeof in);
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				die("read stdin: %s", strerror(errno));
			if (n == 0)
				in_eof = true;
			if (n > 0) {
				msg = in;
				len = (size_t)n;
			}
		}
	}
}

/*
 * Datagram kinds: send msg as one datagram and print the one reply,
 * waiting at most wait seconds for it.
 */
static void run_dgram(int fd, const char *msg, size_t len, double wait,
		      const char *where)
{
	static char reply[REPLY_MAX];
	struct pollfd p = { .fd = fd, .events = POLLIN };
	double deadline = now() + wait, left;
	ssize_t n;
	int rc;

	while ((n = send(fd, msg, len, MSG_NOSIGNAL)) < 0)
		if (errno != EINTR)
			die("send %s: %s", where, strerror(errno));
	for (;;) {
		left = deadline - now();
		rc = poll(&p, 1, left <= 0 ? 0 :
			  left >= INT_MAX / 1000 ? INT_MAX : (int)(left * 1000) + 1);
		if (rc > 0)
			break;
		if (rc == 0)
			die("no reply from %s within %g s", where, wait);
		if (errno != EINTR)
			die("poll: %s", strerror(errno));
	}
	while ((n = recv(fd, reply, sizeof reply, 0)) < 0)
		if (errno != EINTR)
			die("recv %s: %s", where, strerror(errno));
	write_out(reply, (size_t)n);
}

/* The kind named name, or NULL. */
static const struct kind *kind_by_name(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		if (strcmp(kinds[i].name, name) == 0)
			return &kinds[i];
	return NULL;
}

int main(int argc, char **argv)
{
	const struct kind *k = NULL;
	char where[SS_ADDRSTRLEN], *end;
	const char *text;
	double wait = 5.0;
	size_t len = 0;
	char *msg = NULL;
	ss_error err;
	ss_addr a;
	int c, fd;

	signal(SIGPIPE, SIG_IGN);
	while ((c = getopt(argc, argv, "+:t:w:h")) != -1) {
		switch (c) {
		case 't':
			if (!(k = kind_by_name(optarg)))
				bad_usage("unknown kind '%s'", optarg);
			break;
		case 'w':
			wait = strtod(optarg, &end);
			if (end == optarg || *end || !isfinite(wait) || wait < 0)
				bad_usage("bad wait '%s'", optarg);
			break;
		case 'h':
			usage(stdout);
			return 0;
		case ':':
			bad_usage("option -%c needs a value", optopt);
		default:
			bad_usage("unknown option -%c", optopt);
		}
	}
	if (optind >= argc)
		bad_usage("missing ADDRESS");
	text = argv[optind];
	if (!k)
		k = kind_by_name(strchr(text, '/') || text[0] == '@' ?
				 "unix_stream" : "tcp");

	if (ss_addr_parse(&a, text, k->family, &err) < 0)
		die("%s", err.msg);
	ss_addr_format(&a, where, sizeof where);
	if (optind + 1 < argc)
		msg = join_words(argv + optind + 1, argc - optind - 1, &len);
	else if (k->socktype == SOCK_DGRAM)
		msg = read_stdin(k->max_dgram, &len);
	if (k->socktype == SOCK_DGRAM && len > k->max_dgram)
		die("message too long for one datagram (%zu > %zu bytes)",
		    len, k->max_dgram);

	fd = open_socket(k, &a, where);
	if (k->socktype == SOCK_STREAM)
		run_stream(fd, msg, len, where);
	else
		run_dgram(fd, msg, len, wait, where);
	close(fd);
	free(msg);
	return 0;
}
