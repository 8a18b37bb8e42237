/*
 * t_close_grace.c - closing a server with a request in flight and no
 * limit: with block_on_close, close waits for a slow request and its
 * reply arrives whole, under every model of the registry that can have a
 * request in flight while the loop stops.  (Close with idle clients and a
 * grace period, each cut reported once, is one of t_echo_matrix's checks
 * of every model.)
 */
#include "tap.h"
#include "testutil.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SLOW_LEN (256u * 1024u)

struct closer {
	ss_server *s;
	atomic_bool done;
};

static void *closer_main(void *arg)
{
	struct closer *c = arg;

	ss_server_close(c->s);	/* close_grace < 0: no limit */
	atomic_store(&c->done, true);
	return NULL;
}

static bool fd_closed(void *arg)
{
	return tu_fd_closed(*(int *)arg);
}

/* The handler waits for its client, which sends only after close began:
 * close must wait for it, and the reply must arrive whole.  5 checks. */
static void test_block_on_close(const ss_mixin *m)
{
	static char msg[SLOW_LEN], out[SLOW_LEN + 16];
	ss_server *s = tu_server(&ss_tcp_server_ops, m, &tu_echo_handler, NULL);
	struct closer c = { .s = s };
	int fd, lfd = ss_server_fileno(s);
	const char *n = m->name;
	pthread_t t, ct;
	ssize_t got;

	memset(msg, 'a' + (int)strlen(n), sizeof(msg));
	atomic_init(&c.done, false);
	tu_serve_start(s, &t);
	fd = tu_connect(s);
	tu_wait_active(s, 1, TU_IO_TIMEOUT);
	tu_serve_stop(s, &t);
	pthread_create(&ct, NULL, closer_main, &c);
	ok(tu_wait_until(fd_closed, &lfd, TU_IO_TIMEOUT),
	   "%s block_on_close: close began (listener closed)", n);
	ok(!atomic_load(&c.done), "%s block_on_close: close waits for the request", n);
	got = tu_roundtrip_fd(fd, SOCK_STREAM, msg, sizeof(msg), out, sizeof(out));
	close(fd);
	ok(got == (ssize_t)sizeof(msg) && !memcmp(out, msg, sizeof(msg)),
	   "%s block_on_close: the reply arrived whole (%zd of %zu bytes)", n,
	   got, sizeof(msg));
	if (!tu_join_within(ct, TU_IO_TIMEOUT, NULL))
		tap_bail("%s: close never returned after the request ended", n);
	ok(atomic_load(&c.done), "%s block_on_close: close returned after the request",
	   n);
	is_int(ss_server_active_count(s), 0, "%s block_on_close: active_count 0", n);
	ss_server_free(s);
}

int main(void)
{
	double t0 = tu_now();
	const ss_mixin *m;

	tu_init();
	for (size_t i = 0; (m = ss_mixin_at(i)); i++) {
		if (m == &ss_sync_mixin)
			tap_skip(5, "sync runs the request inline in the loop: close stops "
				 "the loop, and closes the listener, only once it has ended");
		else
			test_block_on_close(m);
	}
	tap_diag("took %.0f ms", (tu_now() - t0) * 1000);
	return tap_done();
}
