/*
 * t_compose.c - every predefined composition (ss_threading_tcp_server_new
 * and the rest): it builds the server of its kind and model, the server
 * listens where asked, echoes a round trip, stops and leaves no child or
 * thread behind.  The models themselves are tested at length elsewhere;
 * this catches a composition wired to the wrong kind or model.
 */
#include "tap.h"
#include "testutil.h"

#include <string.h>

typedef ss_server *(*compose_fn)(const char *address, const ss_handler *h,
				 ss_error *err);

struct composition {
	const char *name;
	compose_fn fn;
	const ss_server_ops *kind;
	const ss_mixin *model;		/* NULL: sync */
};

#define C(fn, kind, model) { #fn, fn, &(kind), (model) }

static const struct composition all[] = {
	C(ss_tcp_server_new, ss_tcp_server_ops, NULL),
	C(ss_udp_server_new, ss_udp_server_ops, NULL),
	C(ss_unix_stream_server_new, ss_unix_stream_server_ops, NULL),
	C(ss_unix_dgram_server_new, ss_unix_dgram_server_ops, NULL),
	C(ss_threading_tcp_server_new, ss_tcp_server_ops, &ss_threading_mixin),
	C(ss_threading_udp_server_new, ss_udp_server_ops, &ss_threading_mixin),
	C(ss_threading_unix_stream_server_new, ss_unix_stream_server_ops, &ss_threading_mixin),
	C(ss_threading_unix_dgram_server_new, ss_unix_dgram_server_ops, &ss_threading_mixin),
	C(ss_forking_tcp_server_new, ss_tcp_server_ops, &ss_forking_mixin),
	C(ss_forking_udp_server_new, ss_udp_server_ops, &ss_forking_mixin),
	C(ss_forking_unix_stream_server_new, ss_unix_stream_server_ops, &ss_forking_mixin),
	C(ss_forking_unix_dgram_server_new, ss_unix_dgram_server_ops, &ss_forking_mixin),
	C(ss_pool_tcp_server_new, ss_tcp_server_ops, &ss_pool_mixin),
	C(ss_pool_udp_server_new, ss_udp_server_ops, &ss_pool_mixin),
	C(ss_pool_unix_stream_server_new, ss_unix_stream_server_ops, &ss_pool_mixin),
	C(ss_prefork_tcp_server_new, ss_tcp_server_ops, &ss_prefork_mixin),
	C(ss_prefork_udp_server_new, ss_udp_server_ops, &ss_prefork_mixin),
	C(ss_prefork_unix_stream_server_new, ss_unix_stream_server_ops, &ss_prefork_mixin),
	C(ss_coroutine_tcp_server_new, ss_tcp_server_ops, &ss_coroutine_mixin),
	C(ss_coroutine_udp_server_new, ss_udp_server_ops, &ss_coroutine_mixin),
	C(ss_coroutine_unix_stream_server_new, ss_unix_stream_server_ops, &ss_coroutine_mixin),
	C(ss_threads_coroutine_tcp_server_new, ss_tcp_server_ops, &ss_threads_coroutine_mixin),
	C(ss_threads_coroutine_udp_server_new, ss_udp_server_ops, &ss_threads_coroutine_mixin),
	C(ss_threads_coroutine_unix_stream_server_new, ss_unix_stream_server_ops,
	  &ss_threads_coroutine_mixin),
	C(ss_prefork_coroutine_tcp_server_new, ss_tcp_server_ops, &ss_prefork_coroutine_mixin),
	C(ss_prefork_coroutine_udp_server_new, ss_udp_server_ops, &ss_prefork_coroutine_mixin),
	C(ss_prefork_coroutine_unix_stream_server_new, ss_unix_stream_server_ops,
	  &ss_prefork_coroutine_mixin),
};
#define NALL (sizeof all / sizeof all[0])

static void test_one(const struct composition *c, int baseline_threads)
{
	bool is_unix = c->kind == &ss_unix_stream_server_ops ||
		       c->kind == &ss_unix_dgram_server_ops;
	const char *addr = is_unix ? tu_tmppath("compose") : "127.0.0.1:0";
	const ss_mixin *model = c->model ? c->model : &ss_sync_mixin;
	char out[64], where[SS_ADDRSTRLEN];
	ss_error err;
	ss_server *s;
	pthread_t t;
	ssize_t n;

	s = c->fn(addr, &tu_echo_handler, &err);
	if (!ok(s != NULL, "%s: built", c->name)) {
		tap_diag("%s", err.msg);
		tap_skip(3, "%s did not build", c->name);
		return;
	}
	ok(s->ops == c->kind && (s->mixin == model || s->mixin == c->model),
	   "%s: a %s server under %s (got %s under %s)", c->name, c->kind->name,
	   model->name, s->ops->name, s->mixin ? s->mixin->name : "sync");
	ss_server_address(s, where, sizeof where);
	s->workers = 2;
	tu_serve_start(s, &t);
	n = tu_roundtrip(s, c->name, strlen(c->name), out, sizeof out);
	ok(n == (ssize_t)strlen(c->name) && !memcmp(out, c->name, (size_t)n),
	   "%s: echo on %s", c->name, where);
	tu_serve_stop(s, &t);
	ss_server_close(s);
	ss_server_free(s);
	ok(tu_no_children() && tu_wait_threads_at_most(baseline_threads, TU_IO_TIMEOUT),
	   "%s: no child or thread left", c->name);
}

int main(void)
{
	int threads;
	size_t i;

	tu_init();
	threads = tu_count_threads();
	for (i = 0; i < NALL; i++)
		test_one(&all[i], threads);
	return tap_done();
}
