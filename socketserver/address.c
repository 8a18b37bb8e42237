/*
 * address.c - addresses as users type them ("127.0.0.1:9999",
 * "[::1]:9999", "localhost:9999", "./x.sock", "@abstract") to sockaddrs
 * and back.  Messages name the text and what is wrong with it.
 */
#include "ss_internal.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#define UNIX_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path))

_Static_assert(SS_ADDRSTRLEN >= 4 * UNIX_PATH_MAX + 1,
	       "SS_ADDRSTRLEN holds a unix path with every byte escaped");

/*
 * Fill err with "cannot parse address 'TEXT': WHY" and return code.  TEXT
 * is what the user typed and WHY may quote part of it, so both are
 * escaped (the rest of WHY is our own plain text, which escaping leaves
 * as it is); each is cut to its share of the message.
 */
static int bad(ss_error *err, int code, const char *text, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int bad(ss_error *err, int code, const char *text, const char *fmt, ...)
{
	static const char head[] = "cannot parse address '";
	char why[SS_ERRMSG_MAX], t[SS_ERRMSG_MAX], w[SS_ERRMSG_MAX / 2];
	size_t room;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	if (err) {
		/* the whole text the user typed, as far as the message holds
		 * it after the reason */
		ss__escape_str(w, sizeof w, why);
		room = sizeof err->msg - (sizeof head - 1) - strlen(w) - 3;
		err->code = code;
		snprintf(err->msg, sizeof err->msg, "%s%s': %s", head,
			 ss__escape_str(t, room, text ? text : "(null)"), w);
	}
	return code;
}

/* A decimal port 0..65535, or -1. */
static int parse_port(const char *p)
{
	long v = 0;

	if (!*p)
		return -1;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (*p - '0');
		if (v > 65535)
			return -1;
	}
	return (int)v;
}

/* Split "host:port" / "[v6]:port" into host (in hostbuf) and port text. */
static int split_host_port(const char *text, char *host, size_t hostlen,
			   const char **port, ss_error *err)
{
	const char *colon, *end;

	if (text[0] == '[') {
		end = strchr(text, ']');
		if (!end)
			return bad(err, -EINVAL, text, "missing ']'");
		if (end[1] != ':')
			return bad(err, -EINVAL, text, "missing ':PORT' after ']'");
		colon = end + 1;
		text++;
	} else {
		colon = strrchr(text, ':');
		if (!colon)
			return bad(err, -EINVAL, text, "missing ':PORT'");
		if (memchr(text, ':', (size_t)(colon - text)))
			return bad(err, -EINVAL, text,
				   "IPv6 addresses need brackets, as in [::1]:9999");
		end = colon;
	}
	if ((size_t)(end - text) >= hostlen)
		return bad(err, -EINVAL, text, "host name too long");
	memcpy(host, text, (size_t)(end - text));
	host[end - text] = '\0';
	*port = colon + 1;
	return 0;
}

/* Resolve a host name (not a literal) with getaddrinfo: first result of
 * the wanted family. */
static int resolve(ss_addr *out, const char *text, const char *host,
		   int family, ss_error *err)
{
	struct addrinfo hints = { .ai_family = family, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res;
	int rc;

	rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc != 0)
		return bad(err, -EADDRNOTAVAIL, text, "cannot resolve '%s': %s",
			   host, gai_strerror(rc));
	memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
	out->len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/*
 * The host of "[host]:port": an IPv6 literal and nothing else.  The
 * wildcard, an IPv4 literal or a name in brackets is refused, not read
 * as if the brackets were not there ("[]:0" is not ":0").  Returns 0 or a
 * negative errno with err filled.
 */
static int parse_bracketed(ss_addr *out, const char *text, const char *host,
			   int family, ss_error *err)
{
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&out->ss;

	if (inet_pton(AF_INET6, host, &v6->sin6_addr) != 1)
		return bad(err, -EINVAL, text, "'%s' is not an IPv6 address", host);
	if (family == AF_INET)
		return bad(err, -EINVAL, text, "'%s' is not an IPv4 address", host);
	v6->sin6_family = AF_INET6;
	out->len = sizeof *v6;
	return 0;
}

/* The host of "host:port": empty or "*" (every IPv4 interface), an IPv4
 * literal, or a name to resolve (never an IPv6 literal: split_host_port
 * wants those in brackets).  Returns 0 or a negative errno with err
 * filled. */
static int parse_host(ss_addr *out, const char *text, const char *host,
		      int family, ss_error *err)
{
	struct sockaddr_in *v4 = (struct sockaddr_in *)&out->ss;

	if (family != AF_INET6 && (!host[0] || !strcmp(host, "*"))) {
		v4->sin_family = AF_INET;
		v4->sin_addr.s_addr = htonl(INADDR_ANY);
		out->len = sizeof *v4;
	} else if (family != AF_INET6 && inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		out->len = sizeof *v4;
	} else if (strspn(host, "0123456789.") == strlen(host)) {
		return bad(err, -EINVAL, text, "'%s' is not an %s address", host,
			   family == AF_INET ? "IPv4" :
			   family == AF_INET6 ? "IPv6" : "IP");
	} else {
		return resolve(out, text, host, family, err);
	}
	return 0;
}

/* Parse an inet address; family AF_UNSPEC, AF_INET or AF_INET6. */
static int parse_inet(ss_addr *out, const char *text, int family, ss_error *err)
{
	struct sockaddr_in *v4 = (struct sockaddr_in *)&out->ss;
	struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&out->ss;
	char host[256];
	const char *ptext = "";
	int port, rc;

	rc = split_host_port(text, host, sizeof host, &ptext, err);
	if (rc < 0)
		return rc;
	port = parse_port(ptext);
	if (port < 0)
		return bad(err, -EINVAL, text, "bad port '%.20s' (0 to 65535)", ptext);
	if (text[0] == '[')
		rc = parse_bracketed(out, text, host, family, err);
	else
		rc = parse_host(out, text, host, family, err);
	if (rc < 0)
		return rc;
	out->family = out->ss.ss_family;
	if (out->family == AF_INET)
		v4->sin_port = htons((uint16_t)port);
	else
		v6->sin6_port = htons((uint16_t)port);
	return 0;
}

/* Parse a unix socket path or "@abstract" name. */
static int parse_unix(ss_addr *out, const char *text, ss_error *err)
{
	struct sockaddr_un *un = (struct sockaddr_un *)&out->ss;
	size_t n = strlen(text);

	if (n == 0)
		return bad(err, -EINVAL, text, "empty socket path");
	if (n >= UNIX_PATH_MAX)
		return bad(err, -ENAMETOOLONG, text,
			   "socket path of %zu bytes is too long (at most %zu)",
			   n, UNIX_PATH_MAX - 1);
	un->sun_family = AF_UNIX;
	memcpy(un->sun_path, text, n);
	if (text[0] == '@') {
		un->sun_path[0] = '\0';	/* Linux abstract namespace */
		out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	} else {
		out->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	}
	out->family = AF_UNIX;
	return 0;
}

int ss_addr_parse(ss_addr *out, const char *text, int family, ss_error *err)
{
	memset(out, 0, sizeof *out);
	if (!text)
		return bad(err, -EINVAL, text, "no address given");
	if (family == AF_UNIX)
		return parse_unix(out, text, err);
	if (!text[0])
		return bad(err, -EINVAL, text, "empty address");
	return parse_inet(out, text, family, err);
}

/*
 * Format a unix address: path, "@name" or "(unnamed)", escaped (a peer
 * chooses its own path, newlines and escape codes included).  An abstract
 * name is all of its bytes, so a NUL inside it shows as "\x00".
 */
static void format_unix(const ss_addr *a, char *buf, size_t len)
{
	const struct sockaddr_un *un = (const struct sockaddr_un *)&a->ss;
	size_t off = offsetof(struct sockaddr_un, sun_path);
	size_t n;

	if (a->len <= off) {
		snprintf(buf, len, "(unnamed)");
		return;
	}
	n = a->len - off;
	if (n > UNIX_PATH_MAX)
		n = UNIX_PATH_MAX;
	if (un->sun_path[0] != '\0') {
		ss_escape(buf, len, un->sun_path, strnlen(un->sun_path, n));
		return;
	}
	buf[0] = '\0';
	if (len > 1) {
		buf[0] = '@';
		ss_escape(buf + 1, len - 1, un->sun_path + 1, n - 1);
	}
}

const char *ss_addr_format(const ss_addr *a, char *buf, size_t len)
{
	const struct sockaddr_in *v4 = (const struct sockaddr_in *)&a->ss;
	const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)&a->ss;
	char ip[INET6_ADDRSTRLEN];

	if (!len)
		return buf;
	switch (a->ss.ss_family) {
	case AF_INET:
		inet_ntop(AF_INET, &v4->sin_addr, ip, sizeof ip);
		snprintf(buf, len, "%s:%u", ip, ntohs(v4->sin_port));
		break;
	case AF_INET6:
		inet_ntop(AF_INET6, &v6->sin6_addr, ip, sizeof ip);
		snprintf(buf, len, "[%s]:%u", ip, ntohs(v6->sin6_port));
		break;
	case AF_UNIX:
		format_unix(a, buf, len);
		break;
	default:
		snprintf(buf, len, "(unknown family %d)", a->ss.ss_family);
	}
	return buf;
}

int ss_addr_port(const ss_addr *a)
{
	if (a->ss.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
	if (a->ss.ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
	return -1;
}
