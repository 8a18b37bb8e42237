/*
 * t_escape.c - peer- and user-supplied text in messages: the escaper
 * itself (every class of byte, truncation on a whole escape, NUL
 * termination, nothing written past dstlen), then its uses: unix paths
 * and abstract names in ss_addr_format, parse errors, the default
 * handle_error's line (a unix client bound at a hostile path, quoted by
 * its handler), the unix not-a-socket refusal and TLS option errors.
 * The example programs' usage errors are in t_examples and
 * t_examples_tls.
 */
#include "tap.h"
#include "testutil.h"
#include <socketserver/tls.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Escape n bytes of src into a buffer of dstlen bytes (inside a larger
 * one filled with '#') and check the text, the returned length, and
 * that nothing past dstlen was touched. */
static void escapes(const char *src, size_t n, size_t dstlen, const char *want,
		    size_t want_len, const char *what)
{
	char buf[64];
	size_t got, i;
	bool untouched = true;

	memset(buf, '#', sizeof buf);
	got = ss_escape(buf, dstlen, src, n);
	if (dstlen)
		is_str(buf, want, "%s: text", what);
	is_int(got, want_len, "%s: returns the whole length", what);
	for (i = dstlen; i < sizeof buf; i++)
		untouched &= buf[i] == '#';
	ok(untouched, "%s: nothing written past %zu bytes", what, dstlen);
}

static void test_classes(void)
{
	escapes("plain text 1:2", 14, 64, "plain text 1:2", 14, "printable ASCII as is");
	escapes("a\\b", 3, 64, "a\\\\b", 4, "backslash doubled");
	escapes("\n\r\t", 3, 64, "\\n\\r\\t", 6, "newline, return, tab");
	escapes("\x1b[31m", 5, 64, "\\x1b[31m", 8, "ESC as \\x1b");
	escapes("\x01\x7f", 2, 64, "\\x01\\x7f", 8, "other control and DEL");
	escapes("\x80\xff\xc3\xa9", 4, 64, "\\x80\\xff\\xc3\\xa9", 16,
		"bytes >= 0x80");
	escapes("a\0b", 3, 64, "a\\x00b", 6, "NUL within srclen as \\x00");
	escapes("", 0, 64, "", 0, "empty");
}

static void test_truncation(void)
{
	escapes("abcdef", 6, 4, "abc", 6, "plain text cut to dstlen - 1");
	escapes("ab\ncd", 5, 4, "ab", 6, "\\n that does not fit whole is left out");
	escapes("a\x01" "b", 3, 5, "a", 6,
		"nothing after an escape that did not fit (b would have)");
	escapes("a\x01", 2, 6, "a\\x01", 5, "an escape that fits exactly");
	escapes("abc", 3, 1, "", 3, "dstlen 1: just the NUL");
	escapes("abc", 3, 0, "", 3, "dstlen 0: nothing written");
	ok(ss_escape(NULL, 0, "\n", 1) == 2, "dstlen 0 with dst NULL: the length only");
}

static void test_message(void)
{
	char buf[64];

	is_int(ss_escape_message(buf, sizeof buf, "bind /a\\nb: x\ny\x1b"), 20,
	       "message: returns the whole length");
	is_str(buf, "bind /a\\nb: x\\ny\\x1b",
	       "message: backslashes kept, control characters escaped");
}

/* A unix address of the n bytes of name (a path, or abstract when
 * name[0] is NUL), as getsockname or accept would give it. */
static ss_addr unix_addr(const char *name, size_t n)
{
	struct sockaddr_un *un;
	ss_addr a;

	memset(&a, 0, sizeof a);
	un = (struct sockaddr_un *)&a.ss;
	un->sun_family = AF_UNIX;
	memcpy(un->sun_path, name, n);
	a.len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	a.family = AF_UNIX;
	return a;
}

/* ss_addr_format escapes unix paths and abstract names (NULs included),
 * and SS_ADDRSTRLEN holds the longest. */
static void test_addr_format(void)
{
	static const char evil[] = "/tmp/x\n\x1b[31mFAKE\\.sock";
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char buf[SS_ADDRSTRLEN], want[4 * sizeof path + 1];
	ss_addr a;
	size_t i;

	a = unix_addr(evil, sizeof evil);
	is_str(ss_addr_format(&a, buf, sizeof buf), "/tmp/x\\n\\x1b[31mFAKE\\\\.sock",
	       "a unix path with newline, ESC and backslash is escaped");
	a = unix_addr("\0ab\0c\n", 6);
	is_str(ss_addr_format(&a, buf, sizeof buf), "@ab\\x00c\\n",
	       "an abstract name: all of it, a NUL in it as \\x00");
	memset(path, 0x01, sizeof path);
	a = unix_addr(path, sizeof path);
	for (i = 0; i < sizeof path; i++)
		memcpy(want + 4 * i, "\\x01", 4);
	want[4 * sizeof path] = '\0';
	is_str(ss_addr_format(&a, buf, sizeof buf), want,
	       "the longest escaped path (%zu bytes) fits SS_ADDRSTRLEN", 4 * sizeof path);
	ss_addr_format(&a, buf, 7);
	is_str(buf, "\\x01", "a short buffer: cut on a whole escape");
}

/* True when text has a byte a log line must not carry raw. */
static bool has_raw_bytes(const char *text)
{
	for (; *text; text++)
		if ((unsigned char)*text < 0x20 || (unsigned char)*text >= 0x7f)
			return true;
	return false;
}

/* Parse text (family) and check the message is escaped and holds want. */
static void parse_message(const char *text, int family, const char *want)
{
	ss_error err = { 0 };
	ss_addr a;

	ok(ss_addr_parse(&a, text, family, &err) < 0, "'%s' is refused", want);
	if (!ok(!has_raw_bytes(err.msg) && strstr(err.msg, want),
		"its message holds '%s', with no raw control byte", want))
		tap_diag("message: %s", err.msg);
}

/* What the user typed is escaped in parse errors, in the quoted text and
 * in the reason (which may quote a part of it). */
static void test_parse_messages(void)
{
	char path[200];

	parse_message("bad\naddr", AF_UNSPEC,
		      "cannot parse address 'bad\\naddr': missing ':PORT'");
	parse_message("1.2.3.4:8\r0", AF_UNSPEC, "bad port '8\\r0'");
	parse_message("[\x1b[2J]:0", AF_UNSPEC, "'\\x1b[2J' is not an");
	memset(path, 'p', sizeof path);
	memcpy(path, "/tmp/\n", 6);
	path[150] = '\0';
	parse_message(path, AF_UNIX, "cannot parse address '/tmp/\\nppp");
}

/* A handler that quotes the client's first line in its error, as
 * README's example does. */
static int bad_command(ss_request *r)
{
	char line[128];
	ssize_t n = ss_read_line(r, line, sizeof line);

	if (n < 0)
		return (int)n;
	return ss_request_error(r, -EPROTO, "bad command '%s'", line);
}

static const ss_handler bad_command_handler = { .handle = bad_command };

/* Connect to s from a socket bound at path, send msg, read to EOF. */
static void client_from(const ss_server *s, const char *path, const char *msg)
{
	struct sockaddr_un me = { .sun_family = AF_UNIX };
	char buf[64];
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (strlen(path) >= sizeof me.sun_path)
		tap_bail("client path too long: %s", path);
	memcpy(me.sun_path, path, strlen(path) + 1);
	if (fd < 0 || bind(fd, (struct sockaddr *)&me, sizeof me) < 0 ||
	    connect(fd, (const struct sockaddr *)&s->address.ss, s->address.len) < 0)
		tap_bail("client at %s: %s", path, strerror(errno));
	if (tu_send_all(fd, msg, strlen(msg)) < 0 || shutdown(fd, SHUT_WR) < 0)
		tap_bail("client send: %s", strerror(errno));
	tu_read_to_eof(fd, buf, sizeof buf, TU_IO_TIMEOUT);
	close(fd);
	unlink(path);
}

/* True when text is one line: its only newline is its last byte, and it
 * has no other raw control byte. */
static bool one_clean_line(const char *text)
{
	size_t n = strlen(text);
	char *body;
	bool clean;

	if (n == 0 || text[n - 1] != '\n')
		return false;
	body = strndup(text, n - 1);
	clean = body && !has_raw_bytes(body);
	free(body);
	return clean;
}

/*
 * A unix client whose own socket path carries a newline and an escape
 * code, sending a line with more of them that the handler quotes in its
 * error: the default handle_error writes exactly one line, the path and
 * the quote escaped.
 */
static void test_handle_error_line(void)
{
	char path[256], want[300];
	ss_server *s;
	pthread_t t;
	char *text;

	snprintf(path, sizeof path, "%s/cli\n\x1b[31mFAKE.sock", tu_tmpdir());
	s = tu_server(&ss_unix_stream_server_ops, NULL, &bad_command_handler, NULL);
	tu_serve_start(s, &t);
	tu_stderr_begin();
	client_from(s, path, "rm\r\x1b[2Jsocketserver x: forged\n");
	tu_serve_stop(s, &t);
	text = tu_stderr_end();
	if (!ok(one_clean_line(text), "handle_error wrote one line, no raw control byte"))
		tap_diag("stderr was: %s", text);
	snprintf(want, sizeof want, "request from %s/cli\\n\\x1b[31mFAKE.sock failed: ",
		 tu_tmpdir());
	if (!ok(strstr(text, want), "the client's path is escaped"))
		tap_diag("want '%s' in: %s", want, text);
	if (!ok(strstr(text, "bad command 'rm\\r\\x1b[2Jsocketserver x: forged\\n'\n"),
		"the peer text in the message is escaped"))
		tap_diag("stderr was: %s", text);
	free(text);
	ss_server_free(s);
}

/* A server error (no request): the message is escaped too, and what the
 * library escaped in it already (an address) is not escaped again. */
static void test_handle_error_server(void)
{
	ss_server *s = tu_server(&ss_unix_stream_server_ops, NULL, &tu_echo_handler, NULL);
	char *text;

	snprintf(s->errmsg, sizeof s->errmsg, "accept /x\\ny: evil\n\x1b[31m");
	tu_stderr_begin();
	ss_base_handle_error(s, NULL, -EIO);
	text = tu_stderr_end();
	ok(one_clean_line(text), "server error: one line, no raw control byte");
	if (!ok(strstr(text, ": accept /x\\ny: evil\\n\\x1b[31m\n"),
		"server error: escaped once"))
		tap_diag("stderr was: %s", text);
	free(text);
	ss_server_free(s);
}

/* A file that is not a socket where a unix server is to listen: the
 * refusal names the path escaped. */
static void test_not_a_socket_message(void)
{
	char path[256], want[300];
	ss_error err = { 0 };
	ss_server *s;
	int fd;

	snprintf(path, sizeof path, "%s/file\n\x1b[31m", tu_tmpdir());
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		tap_bail("%s: %s", path, strerror(errno));
	close(fd);
	s = tu_server_try(&ss_unix_stream_server_ops, NULL, &tu_echo_handler, path, &err);
	ok(!s, "a regular file at the path is refused");
	snprintf(want, sizeof want, "bind %s/file\\n\\x1b[31m: file exists", tu_tmpdir());
	if (!ok(!has_raw_bytes(err.msg) && strstr(err.msg, want),
		"the refusal names the path escaped"))
		tap_diag("message: %s", err.msg);
	ss_server_free(s);
	unlink(path);
}

/* TLS options are the program's user's text: a file name or a list
 * quoted in a configuration error is escaped. */
static void tls_message(const char *field, const char *text, const char *want)
{
	ss_error err = { 0 };
	ss_tls_options o;
	ss_tls_config *c;

	ss_tls_options_init(&o);
	o.cert_file = "/nonexistent/cert.pem";
	o.key_file = "/nonexistent/key.pem";
	if (!strcmp(field, "cert_file"))
		o.cert_file = text;
	else if (!strcmp(field, "alpn"))
		o.alpn = text;
	else if (!strcmp(field, "min_version"))
		o.min_version = text;
	c = ss_tls_config_new(&o, &err);
	ok(!c, "TLS %s with control characters: refused", field);
	if (!ok(!has_raw_bytes(err.msg) && strstr(err.msg, want),
		"TLS %s: the message quotes it escaped", field))
		tap_diag("message: %s", err.msg);
	ss_tls_config_free(c);
}

static void test_tls_messages(void)
{
	if (!SS_HAVE_TLS) {
		tap_skip(6, "built with tls=no");
		return;
	}
	tls_message("cert_file", "/nonexistent/c\n\x1b[31m.pem",
		    "TLS certificate /nonexistent/c\\n\\x1b[31m.pem: ");
	tls_message("alpn", "h2,\x1b[2J,", "TLS alpn 'h2,\\x1b[2J,'");
	tls_message("min_version", "1.3\n", "TLS min_version '1.3\\n'");
}

int main(void)
{
	tu_init();
	test_classes();
	test_truncation();
	test_message();
	test_addr_format();
	test_parse_messages();
	test_handle_error_line();
	test_handle_error_server();
	test_not_a_socket_message();
	test_tls_messages();
	return tap_done();
}
