/*
 * t_address.c - ss_addr_parse / ss_addr_format / ss_addr_port: inet
 * round trips (IPv4, IPv6, names, wildcards, port limits), the errors and
 * their messages ("cannot parse address 'TEXT': ..."), family
 * restriction, brackets only around IPv6 literals, and unix paths and
 * abstract names.
 */
#include <socketserver.h>
#include "tap.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define SUN_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path))

/* Parse text and check it formats as want with the given family. */
static void round_trip(const char *text, int family, const char *want,
		       int want_family, int want_port)
{
	ss_error err = { 0 };
	char buf[SS_ADDRSTRLEN];
	ss_addr a;
	int rc;

	rc = ss_addr_parse(&a, text, family, &err);
	if (!is_int(rc, 0, "parse '%s' succeeds", text)) {
		tap_diag("message: %s", err.msg);
		tap_skip(3, "parse failed");
		return;
	}
	is_str(ss_addr_format(&a, buf, sizeof buf), want, "'%s' formats as '%s'",
	       text, want);
	is_int(a.family, want_family, "'%s' family", text);
	is_int(ss_addr_port(&a), want_port, "'%s' port", text);
}

/* Parse must fail, with a negative errno mirrored in err.code and a
 * message that names the text and contains must_have (if not NULL). */
static void parse_fails(const char *text, int family, const char *must_have)
{
	ss_error err = { 0 };
	char want[SS_ERRMSG_MAX];
	ss_addr a;
	int rc;

	rc = ss_addr_parse(&a, text, family, &err);
	ok(rc < 0, "parse '%s' fails (rc %d)", text, rc);
	is_int(err.code, rc, "'%s': err.code is the return value", text);
	snprintf(want, sizeof want, "cannot parse address '%s'", text);
	if (!ok(strstr(err.msg, want) != NULL, "'%s': message names the text", text))
		tap_diag("message: '%s'", err.msg);
	if (must_have && !ok(strstr(err.msg, must_have) != NULL,
			     "'%s': message mentions '%s'", text, must_have))
		tap_diag("message: '%s'", err.msg);
}

static void inet_round_trips(void)
{
	ss_error err = { 0 };
	char buf[SS_ADDRSTRLEN];
	ss_addr a;

	round_trip("127.0.0.1:9999", AF_UNSPEC, "127.0.0.1:9999", AF_INET, 9999);
	round_trip("127.0.0.1:9999", AF_INET, "127.0.0.1:9999", AF_INET, 9999);
	round_trip("[::1]:9999", AF_UNSPEC, "[::1]:9999", AF_INET6, 9999);
	round_trip("[::1]:9999", AF_INET6, "[::1]:9999", AF_INET6, 9999);
	round_trip("[::]:0", AF_UNSPEC, "[::]:0", AF_INET6, 0);
	round_trip(":8080", AF_UNSPEC, "0.0.0.0:8080", AF_INET, 8080);
	round_trip("*:8080", AF_UNSPEC, "0.0.0.0:8080", AF_INET, 8080);
	round_trip("127.0.0.1:0", AF_UNSPEC, "127.0.0.1:0", AF_INET, 0);
	round_trip("127.0.0.1:65535", AF_UNSPEC, "127.0.0.1:65535", AF_INET, 65535);

	/* a name resolves to one of the loopbacks */
	is_int(ss_addr_parse(&a, "localhost:80", AF_UNSPEC, &err), 0,
	       "parse 'localhost:80'");
	ss_addr_format(&a, buf, sizeof buf);
	ok(!strcmp(buf, "127.0.0.1:80") || !strcmp(buf, "[::1]:80"),
	   "'localhost:80' is a loopback (got '%s')", buf);
	is_int(ss_addr_port(&a), 80, "'localhost:80' port");
	is_int(ss_addr_parse(&a, "localhost:80", AF_INET, &err), 0,
	       "parse 'localhost:80' as AF_INET");
	is_str(ss_addr_format(&a, buf, sizeof buf), "127.0.0.1:80",
	       "'localhost:80' as AF_INET is 127.0.0.1");
}

static void inet_errors(void)
{
	parse_fails("x:y", AF_UNSPEC, "port");
	parse_fails("127.0.0.1:65536", AF_UNSPEC, "port");
	parse_fails("127.0.0.1:-1", AF_UNSPEC, "port");
	parse_fails("127.0.0.1:", AF_UNSPEC, NULL);
	parse_fails("127.0.0.1", AF_UNSPEC, NULL);
	parse_fails("[::1", AF_UNSPEC, "]");
	parse_fails("[::1]", AF_UNSPEC, NULL);
	parse_fails("1.2.3.4.5:1", AF_UNSPEC, NULL);
	parse_fails("", AF_UNSPEC, NULL);
	parse_fails("nosuchhost.invalid:80", AF_UNSPEC, "nosuchhost.invalid");
	parse_fails("[::1]:1", AF_INET, NULL);
	parse_fails("127.0.0.1:1", AF_INET6, NULL);
}

/* Brackets hold an IPv6 literal and nothing else: the wildcard, an IPv4
 * literal or a name in brackets is a bad address, never 0.0.0.0. */
static void bracket_errors(void)
{
	parse_fails("[]:0", AF_UNSPEC, "'' is not an IPv6 address");
	parse_fails("[*]:0", AF_UNSPEC, "'*' is not an IPv6 address");
	parse_fails("[127.0.0.1]:0", AF_UNSPEC, "'127.0.0.1' is not an IPv6 address");
	parse_fails("[localhost]:80", AF_UNSPEC, "'localhost' is not an IPv6 address");
	parse_fails("[]:0", AF_INET, NULL);
	parse_fails("[127.0.0.1]:0", AF_INET, NULL);
	parse_fails("[]:0", AF_INET6, "'' is not an IPv6 address");
	round_trip("[::]:0", AF_UNSPEC, "[::]:0", AF_INET6, 0);
	round_trip("[::]:0", AF_INET6, "[::]:0", AF_INET6, 0);
	round_trip(":0", AF_UNSPEC, "0.0.0.0:0", AF_INET, 0);
	round_trip("*:0", AF_UNSPEC, "0.0.0.0:0", AF_INET, 0);
	round_trip("*:0", AF_INET, "0.0.0.0:0", AF_INET, 0);
}

/* NULL text must be refused, not crash: run it in a child so a crash is
 * one failed check, not a dead test program. */
static void null_text(void)
{
	int status = 0;
	pid_t pid = fork();

	if (pid == 0) {
		ss_error err = { 0 };
		ss_addr a;
		int rc = ss_addr_parse(&a, NULL, AF_UNSPEC, &err);

		_exit(rc < 0 && err.code == rc && err.msg[0] ? 0 : 1);
	}
	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	   "NULL text fails with a message, no crash (status 0x%x)", status);
	pid = fork();
	if (pid == 0) {
		ss_addr a;

		_exit(ss_addr_parse(&a, NULL, AF_UNIX, NULL) < 0 ? 0 : 1);
	}
	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	   "NULL text as AF_UNIX with NULL err fails, no crash (status 0x%x)",
	   status);
}

/* An error with err == NULL is fine too. */
static void null_err(void)
{
	ss_addr a;

	ok(ss_addr_parse(&a, "x:y", AF_UNSPEC, NULL) < 0,
	   "bad address with NULL err fails");
	is_int(ss_addr_parse(&a, "127.0.0.1:1", AF_UNSPEC, NULL), 0,
	       "good address with NULL err parses");
}

static void unix_paths(void)
{
	char path[SUN_PATH_MAX + 8];
	ss_addr a;

	round_trip("./x.sock", AF_UNIX, "./x.sock", AF_UNIX, -1);
	round_trip("/tmp/a b.sock", AF_UNIX, "/tmp/a b.sock", AF_UNIX, -1);
	round_trip("@abstract", AF_UNIX, "@abstract", AF_UNIX, -1);
	ok(ss_addr_parse(&a, "@abstract", AF_UNIX, NULL) == 0 &&
	   ((struct sockaddr_un *)&a.ss)->sun_path[0] == '\0',
	   "'@abstract' is in the abstract namespace (sun_path[0] == 0)");

	/* SUN_PATH_MAX - 1 bytes fit with the NUL; SUN_PATH_MAX do not */
	memset(path, 'p', SUN_PATH_MAX - 1);
	path[0] = '/';
	path[SUN_PATH_MAX - 1] = '\0';
	round_trip(path, AF_UNIX, path, AF_UNIX, -1);
	path[SUN_PATH_MAX - 1] = 'p';
	path[SUN_PATH_MAX] = '\0';
	parse_fails(path, AF_UNIX, "too long");
	parse_fails("", AF_UNIX, NULL);
}

/* An unbound unix peer (socketpair, unnamed client) formats as
 * "(unnamed)". */
static void unix_unnamed(void)
{
	char buf[SS_ADDRSTRLEN];
	ss_addr a;

	memset(&a, 0, sizeof a);
	a.ss.ss_family = AF_UNIX;
	a.family = AF_UNIX;
	a.len = sizeof(sa_family_t);
	is_str(ss_addr_format(&a, buf, sizeof buf), "(unnamed)",
	       "unnamed unix address formats as '(unnamed)'");
}

/* Messages quote the whole address the user typed: a 148-byte unix path
 * that is too long, and a 107-byte one that cannot be bound. */
static void long_paths(void)
{
	char path[200], fits[108];
	ss_error err = { 0 };
	ss_server *s;

	memset(path, 'p', 148);
	memcpy(path, "/no/such/dir/", 13);
	path[148] = '\0';
	parse_fails(path, AF_UNIX, "too long");
	memcpy(fits, path, 107);
	fits[107] = '\0';
	s = ss_unix_stream_server_new(fits, NULL, &err);
	ok(!s, "a 107-byte path under a missing directory cannot be bound");
	ss_server_free(s);
	if (!ok(strstr(err.msg, fits) != NULL && strstr(err.msg, "No such file or directory"),
		"the bind error quotes the whole path and the cause"))
		tap_diag("message: '%s'", err.msg);
}

int main(void)
{
	inet_round_trips();
	inet_errors();
	bracket_errors();
	null_text();
	null_err();
	unix_paths();
	unix_unnamed();
	long_paths();
	return tap_done();
}
