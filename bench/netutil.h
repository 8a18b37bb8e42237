/*
 * netutil.h - what the benchmark programs share: parsing a loopback
 * address ("127.0.0.1:PORT", "[::1]:PORT"), refusing any other, printing
 * one, and opening a listening socket the way the reference servers do.
 */
#ifndef BENCH_NETUTIL_H
#define BENCH_NETUTIL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* "[ffff:...:ffff]:65535" and a NUL. */
#define BN_ADDRSTRLEN 64

/* A parsed address: the sockaddr and its length. */
struct bn_addr {
	struct sockaddr_storage ss;
	socklen_t len;
};

/*
 * Parse "A.B.C.D:PORT" or "[IPV6]:PORT" into *out.  Only loopback
 * addresses (127.0.0.0/8, ::1) are accepted: the benchmark never sends
 * traffic anywhere else.  Returns 0, or -1 with a message in err.
 */
int bn_parse_addr(const char *text, struct bn_addr *out, char *err, size_t errlen);

/* Write the address as "A.B.C.D:PORT" or "[IPV6]:PORT" to buf; returns buf. */
char *bn_format_addr(const struct bn_addr *a, char *buf, size_t len);

/*
 * Open a socket of type (SOCK_STREAM or SOCK_DGRAM, | SOCK_NONBLOCK if
 * wanted) bound to text, listening if it is a stream; *bound gets the real
 * address (port 0 resolved).  Returns the fd (the caller owns it), or -1
 * after printing "prog: step ADDRESS: cause" on stderr.
 */
int bn_listen(const char *text, int type, struct bn_addr *bound);

/* Raise RLIMIT_NOFILE's soft limit to want (at most the hard limit).
 * Returns the soft limit now in force. */
long bn_raise_nofile(long want);

/* Set by SIGINT / SIGTERM once bn_stop_on_signals() installed them. */
extern volatile sig_atomic_t bn_stopping;

/* Make SIGINT and SIGTERM set bn_stopping and interrupt the blocking call
 * in progress (no SA_RESTART: it fails with EINTR); ignore SIGPIPE. */
void bn_stop_on_signals(void);

#endif /* BENCH_NETUTIL_H */
