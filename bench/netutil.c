/*
 * netutil.c - loopback address parsing, formatting and the listening
 * socket of the reference servers (see netutil.h).
 */
#include "netutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* True if the address is 127.0.0.0/8 or ::1. */
static bool is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;

		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

/* Parse a port 0..65535; -1 if text is not one. */
static long parse_port(const char *text)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(text, &end, 10);
	if (errno || end == text || *end || v < 0 || v > 65535)
		return -1;
	return v;
}

int bn_parse_addr(const char *text, struct bn_addr *out, char *err, size_t errlen)
{
	char host[BN_ADDRSTRLEN];
	const char *colon, *hstart = text;
	size_t hlen;
	long port;

	memset(out, 0, sizeof *out);
	colon = strrchr(text, ':');
	if (!colon)
		goto bad;
	hlen = (size_t)(colon - text);
	if (text[0] == '[') {
		if (hlen < 2 || colon[-1] != ']')
			goto bad;
		hstart = text + 1;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= sizeof host || (port = parse_port(colon + 1)) < 0)
		goto bad;
	memcpy(host, hstart, hlen);
	host[hlen] = '\0';
	if (text[0] == '[') {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->ss;

		if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1)
			goto bad;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((unsigned short)port);
		out->len = sizeof *in6;
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&out->ss;

		if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
			goto bad;
		in->sin_family = AF_INET;
		in->sin_port = htons((unsigned short)port);
		out->len = sizeof *in;
	}
	if (!is_loopback(&out->ss)) {
		snprintf(err, errlen, "refusing '%s': the benchmark only talks to "
			 "loopback addresses (127.0.0.0/8, [::1])", text);
		return -1;
	}
	return 0;
bad:
	snprintf(err, errlen, "cannot parse address '%s' "
		 "(want 127.0.0.1:PORT or [::1]:PORT)", text);
	return -1;
}

char *bn_format_addr(const struct bn_addr *a, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];

	if (a->ss.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&a->ss;

		inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
		snprintf(buf, len, "%s:%u", host, ntohs(in->sin_port));
	} else {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
		snprintf(buf, len, "[%s]:%u", host, ntohs(in6->sin6_port));
	}
	return buf;
}

int bn_listen(const char *text, int type, struct bn_addr *bound)
{
	const char *prog = program_invocation_short_name;
	char err[256];
	struct bn_addr a;
	int fd, one = 1;

	if (bn_parse_addr(text, &a, err, sizeof err) < 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		return -1;
	}
	fd = socket(a.ss.ss_family, type | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fprintf(stderr, "%s: socket: %s\n", prog, strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&a.ss, a.len) < 0) {
		fprintf(stderr, "%s: bind %s: %s\n", prog, text, strerror(errno));
		goto out_close_fd;
	}
	if ((type & 0xf) == SOCK_STREAM && listen(fd, SOMAXCONN) < 0) {
		fprintf(stderr, "%s: listen %s: %s\n", prog, text, strerror(errno));
		goto out_close_fd;
	}
	bound->len = sizeof bound->ss;
	getsockname(fd, (struct sockaddr *)&bound->ss, &bound->len);
	return fd;
out_close_fd:
	close(fd);
	return -1;
}

long bn_raise_nofile(long want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -1;
	if ((rlim_t)want > rl.rlim_cur) {
		rl.rlim_cur = (rlim_t)want < rl.rlim_max ? (rlim_t)want : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	return (long)rl.rlim_cur;
}

volatile sig_atomic_t bn_stopping;

static void on_stop(int sig)
{
	(void)sig;
	bn_stopping = 1;
}

void bn_stop_on_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_stop;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}
