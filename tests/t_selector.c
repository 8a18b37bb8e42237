/*
 * t_selector.c - the selector module on every backend (epoll, poll,
 * select): register / modify / unregister, readiness of pipes, pausing,
 * timeouts, errors; and the server loop running on each backend.
 */
#include <socketserver.h>
#include <socketserver/selector.h>
#include "tap.h"
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

static const char *const backends[] = { "epoll", "poll", "select" };

/* Find the event for fd in evs[0..n), or NULL. */
static const ss_selector_event *find(const ss_selector_event *evs, int n, int fd)
{
	int i;

	for (i = 0; i < n; i++)
		if (evs[i].fd == fd)
			return &evs[i];
	return NULL;
}

static void test_backend(const char *name)
{
	ss_selector_event evs[8];
	const ss_selector_event *e;
	int a[2], b[2], tag_a, tag_b, n;
	ss_error err;
	ss_selector *sel = ss_selector_new(name, &err);

	if (!ok(sel != NULL, "%s: created", name)) {
		tap_diag("%s", err.msg);
		return;
	}
	is_str(ss_selector_backend(sel), name, "%s: reports its backend", name);
	if (pipe2(a, O_CLOEXEC) < 0 || pipe2(b, O_CLOEXEC) < 0)
		tap_bail("pipe: %s", strerror(errno));
	is_int(ss_selector_register(sel, a[0], SS_EVENT_READ, &tag_a), 0,
	       "%s: register a pipe for reading", name);
	is_int(ss_selector_register(sel, b[1], SS_EVENT_WRITE, &tag_b), 0,
	       "%s: register a pipe for writing", name);
	is_int(ss_selector_register(sel, a[0], SS_EVENT_READ, NULL), -EEXIST,
	       "%s: registering twice is -EEXIST", name);
	is_int(ss_selector_register(sel, a[1], 0, NULL), -EINVAL,
	       "%s: no events is -EINVAL", name);
	is_int((int)ss_selector_count(sel), 2, "%s: two registered", name);

	n = ss_selector_select(sel, evs, 8, 1.0);
	e = find(evs, n, b[1]);
	ok(n == 1 && e && e->events == SS_EVENT_WRITE && e->data == &tag_b,
	   "%s: only the writable pipe is ready, with its data (n=%d)", name, n);

	if (write(a[1], "x", 1) != 1)
		tap_bail("write: %s", strerror(errno));
	n = ss_selector_select(sel, evs, 8, 1.0);
	e = find(evs, n, a[0]);
	ok(n == 2 && e && e->events == SS_EVENT_READ && e->data == &tag_a,
	   "%s: a written pipe becomes readable (n=%d)", name, n);

	is_int(ss_selector_modify(sel, b[1], 0, &tag_b), 0, "%s: pause the writer", name);
	n = ss_selector_select(sel, evs, 8, 0);
	ok(n == 1 && evs[0].fd == a[0], "%s: a paused fd is not reported (n=%d)", name, n);
	is_int(ss_selector_modify(sel, b[1], SS_EVENT_WRITE, &tag_a), 0,
	       "%s: resume it with new data", name);
	n = ss_selector_select(sel, evs, 8, 0);
	e = find(evs, n, b[1]);
	ok(e && e->data == &tag_a, "%s: resumed, with the new data", name);

	is_int(ss_selector_unregister(sel, b[1]), 0, "%s: unregister", name);
	is_int(ss_selector_unregister(sel, b[1]), -ENOENT, "%s: unregister twice is -ENOENT", name);
	is_int(ss_selector_modify(sel, b[1], SS_EVENT_READ, NULL), -ENOENT,
	       "%s: modify unknown is -ENOENT", name);
	n = ss_selector_select(sel, evs, 1, 0);
	ok(n == 1 && evs[0].fd == a[0], "%s: max events honoured", name);

	{
		char c;

		if (read(a[0], &c, 1) != 1)
			tap_bail("read: %s", strerror(errno));
	}
	n = ss_selector_select(sel, evs, 8, 0.05);
	is_int(n, 0, "%s: nothing ready: times out with 0", name);
	close(a[1]);
	n = ss_selector_select(sel, evs, 8, 1.0);
	ok(n == 1 && evs[0].fd == a[0] && (evs[0].events & SS_EVENT_READ),
	   "%s: hang-up reported as readable", name);
	ss_selector_unregister(sel, a[0]);
	close(a[0]);
	close(b[0]);
	close(b[1]);
	ss_selector_free(sel);
}

/* An exclusive registration (a listener shared by workers) can be paused
 * and resumed and still reports readiness, on every backend. */
static void test_exclusive(const char *name)
{
	ss_selector_event ev[4];
	ss_selector *sel;
	ss_error err;
	int p[2], n;

	sel = ss_selector_new(name, &err);
	if (!sel || pipe2(p, O_CLOEXEC) < 0)
		tap_bail("selector %s / pipe", name);
	is_int(ss_selector_register(sel, p[0], SS_EVENT_READ | SS_EVENT_EXCLUSIVE, NULL), 0,
	       "%s: exclusive registration", name);
	is_int(ss_selector_register(sel, p[1], SS_EVENT_EXCLUSIVE, NULL), -EINVAL,
	       "%s: exclusive alone is -EINVAL", name);
	if (write(p[1], "x", 1) != 1)
		tap_bail("write");
	is_int(ss_selector_modify(sel, p[0], 0, NULL), 0, "%s: pause it", name);
	is_int(ss_selector_select(sel, ev, 4, 0), 0, "%s: paused: not reported", name);
	is_int(ss_selector_modify(sel, p[0], SS_EVENT_READ | SS_EVENT_EXCLUSIVE, NULL), 0,
	       "%s: resume it", name);
	n = ss_selector_select(sel, ev, 4, 1.0);
	ok(n == 1 && ev[0].fd == p[0] && ev[0].events == SS_EVENT_READ,
	   "%s: resumed: readable, reported as READ only (n=%d)", name, n);
	ss_selector_free(sel);
	close(p[0]);
	close(p[1]);
}

/* The server loop on each backend: an echo through serve_forever. */
static void test_loop(const char *name)
{
	char out[16];
	pthread_t t;
	ss_server *s = tu_server(&ss_tcp_server_ops, &ss_threading_mixin,
				 &tu_echo_handler, NULL);

	s->selector = name;
	tu_serve_start(s, &t);
	is_int(tu_roundtrip(s, "hello", 5, out, sizeof out), 5,
	       "serve_forever on %s: echo", name);
	is_int(tu_serve_stop(s, &t), 0, "serve_forever on %s: stops", name);
	ss_server_free(s);
}

int main(void)
{
	ss_error err;
	size_t i;

	tu_init();
	for (i = 0; i < sizeof backends / sizeof backends[0]; i++)
		test_backend(backends[i]);
	ok(ss_selector_new("kqueue", &err) == NULL && strstr(err.msg, "kqueue"),
	   "an unknown backend is refused by name");
	{
		ss_selector *sel = ss_selector_new(NULL, &err);

		is_str(sel ? ss_selector_backend(sel) : "", "epoll",
		       "the default is the best: epoll");
		ss_selector_free(sel);
	}
	{
		ss_selector *sel = ss_selector_new("select", &err);

		is_int(ss_selector_register(sel, FD_SETSIZE, SS_EVENT_READ, NULL), -EINVAL,
		       "select refuses fds >= FD_SETSIZE");
		ss_selector_free(sel);
	}
	for (i = 0; i < sizeof backends / sizeof backends[0]; i++)
		test_exclusive(backends[i]);
	for (i = 0; i < sizeof backends / sizeof backends[0]; i++)
		test_loop(backends[i]);
	return tap_done();
}
