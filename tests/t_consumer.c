/*
 * t_consumer.c - the library as a user gets it: the README's threading
 * echo server (its C block under "## A threading TCP echo server") is
 * built with cc and pkg-config against the install `scons check` makes
 * in BUILD/stage, as the README's Install section says:
 *
 *  - against the shared library: the program needs libsocketserver.so.0
 *    (the SONAME) and runs with LD_LIBRARY_PATH at the stage's lib dir;
 *  - with `pkg-config --static` against the static library, the TLS
 *    layer pulled out of the archive too (-u ss_tls_config_new), so the
 *    link needs every library socketserver.pc lists for a static link;
 *    the program needs no libsocketserver at run time.
 *
 * Each program is started on 127.0.0.1:0, prints "listening on ADDRESS",
 * echoes a line to a client, and exits 0 with nothing on stderr when it
 * gets SIGTERM (the shared one) or SIGINT (the static one).  Only the
 * processes started here are signalled, by pid.
 */
#include <socketserver.h>
#include "stageutil.h"
#include "tap.h"
#include "testutil.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DEADLINE_MS 10000	/* longest wait for the program */

/* The README's echo server, written to a file: its path. */
static char *echo_source(void)
{
	ts_block b[TS_MAX_BLOCKS];
	char *path = NULL;
	int n = ts_readme_blocks(b);

	for (int i = 0; i < n; i++) {
		if (!path && !strcmp(b[i].heading, "A threading TCP echo server"))
			path = ts_write_tmp("echo.c", b[i].text);
		free(b[i].text);
	}
	if (!path)
		tap_bail("README.md: no C block under '## A threading TCP echo server'");
	return path;
}

/* Build exe from src as the README says, against the shared library or
 * (linked_static) the static one.  True when it built. */
static bool build(const char *exe, const char *src, bool linked_static)
{
	char out[16384];
	int rc;

	if (linked_static)
		rc = ts_sh(out, sizeof out,
			   "cflags=$(pkg-config --cflags socketserver) &&"
			   " libs=$(pkg-config --static --libs socketserver) &&"
			   " %s -o %s %s $cflags -Wl,-u,ss_tls_config_new"
			   " -Wl,-Bstatic $libs -Wl,-Bdynamic", ts_cc(), exe, src);
	else
		rc = ts_sh(out, sizeof out,
			   "flags=$(pkg-config --cflags --libs socketserver) &&"
			   " %s -o %s %s $flags", ts_cc(), exe, src);
	if (!is_int(rc, 0, "%s: cc and pkg-config%s build the README's echo server",
		    linked_static ? "static" : "shared", linked_static ? " --static" : ""))
		tap_diag("%s", out);
	return rc == 0;
}

/* Whether exe needs libsocketserver at run time, as its NEEDED entries
 * say: the SONAME's, and no other. */
static void check_needed(const char *exe, bool linked_static)
{
	char out[16384];
	bool soname, any;

	is_int(ts_sh(out, sizeof out, "readelf -d %s", exe), 0, "readelf -d %s", exe);
	soname = strstr(out, "Shared library: [libsocketserver.so.0]") != NULL;
	any = strstr(out, "libsocketserver") != NULL;
	if (linked_static)
		ok(!any, "static: the program needs no libsocketserver");
	else
		ok(soname, "shared: the program needs libsocketserver.so.0, the SONAME");
	if (linked_static ? any : !soname)
		tap_diag("%s", out);
}

/* Start exe on 127.0.0.1:0, echo a line through it, stop it with sig. */
static void run(const char *exe, const char *how, int sig)
{
	const char *argv[] = { "echo", "127.0.0.1:0", NULL };
	const char msg[] = "hello from a consumer\n";
	char line[256], addr[SS_ADDRSTRLEN] = "", reply[256] = "", errtext[4096] = "";
	int out, err, fd, code;
	ssize_t n = -1;
	pid_t pid;

	pid = tu_spawn(exe, argv, NULL, &out, &err);
	if (!ok(tu_read_until(out, line, sizeof line, true, DEADLINE_MS) > 0 &&
		sscanf(line, "listening on %127s", addr) == 1,
		"%s: prints 'listening on ADDRESS' for 127.0.0.1:0", how))
		tap_diag("got '%s'", line);
	if (addr[0] && (fd = tu_tcp_connect(addr)) >= 0) {
		if (tu_send_all(fd, msg, sizeof msg - 1) == 0 && shutdown(fd, SHUT_WR) == 0)
			n = tu_read_to_eof(fd, reply, sizeof reply - 1, DEADLINE_MS / 1000.0);
		close(fd);
	}
	reply[n > 0 ? n : 0] = '\0';
	is_str(reply, msg, "%s: echoes a line", how);
	kill(pid, sig);
	code = tu_wait_exit(pid, DEADLINE_MS, NULL);
	close(out);
	tu_read_until(err, errtext, sizeof errtext, false, DEADLINE_MS);
	close(err);
	is_int(code, 0, "%s: exits 0 on %s", how, strsignal(sig));
	if (!is_str(errtext, "", "%s: nothing on stderr", how))
		tap_diag("stderr: %s", errtext);
}

int main(void)
{
	char *src, shared[PATH_MAX], fixed[PATH_MAX], libdir[PATH_MAX];

	tu_init();
	snprintf(libdir, sizeof libdir, "%s/lib", ts_stage());
	snprintf(shared, sizeof shared, "%s/echo_shared", tu_tmpdir());
	snprintf(fixed, sizeof fixed, "%s/echo_static", tu_tmpdir());
	src = echo_source();

	if (build(shared, src, false)) {
		check_needed(shared, false);
		setenv("LD_LIBRARY_PATH", libdir, 1);
		run(shared, "shared", SIGTERM);
		unsetenv("LD_LIBRARY_PATH");
	}
	if (build(fixed, src, true)) {
		check_needed(fixed, true);
		run(fixed, "static", SIGINT);
	}
	free(src);
	return tap_done();
}
