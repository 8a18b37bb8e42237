/*
 * t_unix.c - unix socket files, for the stream and datagram kinds: the
 * server creates its socket file and close removes it; a stale socket
 * file is replaced; a file that is not a socket is refused and left
 * untouched; a live server's path is "in use" and the live server is not
 * disturbed; abstract "@names" work and leave no file; a path too long
 * for sun_path is a parse error.
 */
#include "tap.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static bool is_socket_file(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

static bool is_gone(const char *path)
{
	struct stat st;

	return lstat(path, &st) < 0 && errno == ENOENT;
}

/* Serve s in a thread for one round trip; true when it echoed. */
static bool serves(ss_server *s)
{
	char out[32];
	pthread_t t;
	ssize_t n;

	tu_serve_start(s, &t);
	n = tu_roundtrip(s, "unix", 4, out, sizeof(out));
	tu_serve_stop(s, &t);
	return n == 4 && !memcmp(out, "unix", 4);
}

static void test_create_remove(const ss_server_ops *ops)
{
	char path[256];
	ss_error err = { 0 };
	ss_server *s;

	snprintf(path, sizeof(path), "%s", tu_tmppath("create"));
	if (ops->socktype == SOCK_STREAM)
		s = ss_unix_stream_server_new(path, &tu_echo_handler, &err);
	else
		s = ss_unix_dgram_server_new(path, &tu_echo_handler, &err);
	if (!s)
		tap_bail("%s on %s: %s", ops->name, path, err.msg);
	ok(is_socket_file(path), "%s: the server created its socket file", ops->name);
	ok(serves(s), "%s: it serves on the path", ops->name);
	ss_server_close(s);
	ok(is_gone(path), "%s: close removed the socket file", ops->name);
	ss_server_free(s);
}

/* A socket file nobody listens on, as a crashed server leaves it. */
static void make_stale(const char *path, int type)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);

	if (strlen(path) >= sizeof(a.sun_path))
		tap_bail("path too long: %s", path);
	memcpy(a.sun_path, path, strlen(path) + 1);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		tap_bail("stale socket %s: %s", path, strerror(errno));
	close(fd);
}

static void test_stale(const ss_server_ops *ops)
{
	char path[256];
	ss_server *s;

	snprintf(path, sizeof(path), "%s", tu_tmppath("stale"));
	make_stale(path, ops->socktype);
	ok(is_socket_file(path), "%s: a stale socket file is there", ops->name);
	s = tu_server(ops, NULL, &tu_echo_handler, path);
	ok(serves(s), "%s: the stale file was replaced and the server works",
	   ops->name);
	ss_server_free(s);
	ok(is_gone(path), "%s: free removed the socket file", ops->name);
}

static void test_regular_file(const ss_server_ops *ops)
{
	static const char precious[] = "precious data\n";
	char path[256], buf[64];
	ss_error err = { 0 };
	ss_server *s;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s", tu_tmppath("regular"));
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, precious, sizeof(precious) - 1) < 0)
		tap_bail("%s: %s", path, strerror(errno));
	close(fd);
	s = tu_server_try(ops, NULL, &tu_echo_handler, path, &err);
	ok(s == NULL, "%s: a regular file at the path is refused", ops->name);
	ok(err.code < 0, "%s: with an error code (%d)", ops->name, err.code);
	if (!ok(strstr(err.msg, path) && strstr(err.msg, "not a socket"),
		"%s: the message names the path and says it is not a socket",
		ops->name))
		tap_diag("    message: %s", err.msg);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	n = fd < 0 ? -1 : read(fd, buf, sizeof(buf));
	if (fd >= 0)
		close(fd);
	ok(n == (ssize_t)sizeof(precious) - 1 && !memcmp(buf, precious, (size_t)n),
	   "%s: the file is untouched", ops->name);
	ss_server_free(s);
	unlink(path);
}

static void test_in_use(const ss_server_ops *ops)
{
	char path[256];
	ss_error err = { 0 };
	ss_server *s1, *s2;

	snprintf(path, sizeof(path), "%s", tu_tmppath("inuse"));
	s1 = tu_server(ops, NULL, &tu_echo_handler, path);
	s2 = tu_server_try(ops, NULL, &tu_echo_handler, path, &err);
	ok(s2 == NULL, "%s: a second server on a live path fails", ops->name);
	if (!ok(strstr(err.msg, "Address already in use") && strstr(err.msg, path),
		"%s: \"Address already in use\" naming the path", ops->name))
		tap_diag("    message: %s", err.msg);
	ok(is_socket_file(path), "%s: the live server's file is still there",
	   ops->name);
	ok(serves(s1), "%s: the live server still works", ops->name);
	ss_server_free(s2);
	ss_server_free(s1);
	ok(is_gone(path), "%s: its file removed at close", ops->name);
}

static void test_abstract(const ss_server_ops *ops)
{
	char name[64], got[SS_ADDRSTRLEN];
	ss_server *s;

	snprintf(name, sizeof(name), "@ss-test-%s-%d", ops->name, (int)getpid());
	s = tu_server(ops, NULL, &tu_echo_handler, name);
	is_str(ss_server_address(s, got, sizeof(got)), name,
	       "%s: abstract address reported as written", ops->name);
	ok(serves(s), "%s: abstract socket serves", ops->name);
	ss_server_free(s);
	ok(is_gone(name) && is_gone(name + 1), "%s: abstract name left no file",
	   ops->name);
}

/* A forked child ending its request must not remove the parent's socket
 * file (nor must a thread). */
static void test_children_keep_file(const ss_server_ops *ops, const ss_mixin *m)
{
	char path[256];
	char out[8];
	ss_server *s;
	pthread_t t;
	int i, good = 0;

	snprintf(path, sizeof(path), "%s", tu_tmppath("keep"));
	s = tu_server(ops, m, &tu_echo_handler, path);
	tu_serve_start(s, &t);
	for (i = 0; i < 3; i++)
		good += tu_roundtrip(s, "keep", 4, out, sizeof(out)) == 4;
	is_int(good, 3, "%s/%s: requests served", ops->name, m->name);
	ok(tu_wait_active(s, 0, TU_IO_TIMEOUT), "%s/%s: the requests ended",
	   ops->name, m->name);
	ok(is_socket_file(path), "%s/%s: the socket file outlives the requests",
	   ops->name, m->name);
	tu_serve_stop(s, &t);
	ss_server_free(s);
	ok(is_gone(path), "%s/%s: and goes at free", ops->name, m->name);
}

static void test_too_long(const ss_server_ops *ops)
{
	char path[200];
	ss_error err = { 0 };
	ss_server *s;

	memset(path, 'p', sizeof(path));
	memcpy(path, "/tmp/", 5);
	path[120] = '\0';	/* 120 bytes: sun_path holds 107 and a NUL */
	s = tu_server_try(ops, NULL, &tu_echo_handler, path, &err);
	ok(s == NULL, "%s: a 120-byte path is refused", ops->name);
	if (!ok(strstr(err.msg, "cannot parse address"),
		"%s: \"cannot parse address\" for a path too long", ops->name))
		tap_diag("    message: %s", err.msg);
	tap_diag("%s: %s", ops->name, err.msg);
	ss_server_free(s);
}

int main(void)
{
	const ss_server_ops *kinds[] = {
		&ss_unix_stream_server_ops, &ss_unix_dgram_server_ops,
	};
	double t0 = tu_now();
	size_t i;

	tu_init();
	for (i = 0; i < 2; i++) {
		test_create_remove(kinds[i]);
		test_stale(kinds[i]);
		test_regular_file(kinds[i]);
		test_in_use(kinds[i]);
		test_abstract(kinds[i]);
		test_too_long(kinds[i]);
		test_children_keep_file(kinds[i], &ss_threading_mixin);
		test_children_keep_file(kinds[i], &ss_forking_mixin);
	}
	tap_diag("took %.0f ms", (tu_now() - t0) * 1000);
	return tap_done();
}
