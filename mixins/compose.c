/*
 * compose.c - the predefined servers: a kind (ops) plus a model (mixin),
 * one line each, as ThreadingTCPServer is one line at the end of Python's
 * module.  Every composition of the library is here; a model that does
 * not take a kind (unix datagram under the pool, prefork and coroutine
 * models) has no line.
 */
#include "ss_internal.h"

SS__COMPOSE(ss_tcp_server_new, ss_tcp_server_ops, NULL)
SS__COMPOSE(ss_udp_server_new, ss_udp_server_ops, NULL)
SS__COMPOSE(ss_unix_stream_server_new, ss_unix_stream_server_ops, NULL)
SS__COMPOSE(ss_unix_dgram_server_new, ss_unix_dgram_server_ops, NULL)

SS__COMPOSE(ss_threading_tcp_server_new, ss_tcp_server_ops, &ss_threading_mixin)
SS__COMPOSE(ss_threading_udp_server_new, ss_udp_server_ops, &ss_threading_mixin)
SS__COMPOSE(ss_threading_unix_stream_server_new, ss_unix_stream_server_ops, &ss_threading_mixin)
SS__COMPOSE(ss_threading_unix_dgram_server_new, ss_unix_dgram_server_ops, &ss_threading_mixin)

SS__COMPOSE(ss_forking_tcp_server_new, ss_tcp_server_ops, &ss_forking_mixin)
SS__COMPOSE(ss_forking_udp_server_new, ss_udp_server_ops, &ss_forking_mixin)
SS__COMPOSE(ss_forking_unix_stream_server_new, ss_unix_stream_server_ops, &ss_forking_mixin)
SS__COMPOSE(ss_forking_unix_dgram_server_new, ss_unix_dgram_server_ops, &ss_forking_mixin)

SS__COMPOSE(ss_pool_tcp_server_new, ss_tcp_server_ops, &ss_pool_mixin)
SS__COMPOSE(ss_pool_udp_server_new, ss_udp_server_ops, &ss_pool_mixin)
SS__COMPOSE(ss_pool_unix_stream_server_new, ss_unix_stream_server_ops, &ss_pool_mixin)

SS__COMPOSE(ss_prefork_tcp_server_new, ss_tcp_server_ops, &ss_prefork_mixin)
SS__COMPOSE(ss_prefork_udp_server_new, ss_udp_server_ops, &ss_prefork_mixin)
SS__COMPOSE(ss_prefork_unix_stream_server_new, ss_unix_stream_server_ops, &ss_prefork_mixin)

SS__COMPOSE(ss_coroutine_tcp_server_new, ss_tcp_server_ops, &ss_coroutine_mixin)
SS__COMPOSE(ss_coroutine_udp_server_new, ss_udp_server_ops, &ss_coroutine_mixin)
SS__COMPOSE(ss_coroutine_unix_stream_server_new, ss_unix_stream_server_ops, &ss_coroutine_mixin)

SS__COMPOSE(ss_threads_coroutine_tcp_server_new, ss_tcp_server_ops, &ss_threads_coroutine_mixin)
SS__COMPOSE(ss_threads_coroutine_udp_server_new, ss_udp_server_ops, &ss_threads_coroutine_mixin)
SS__COMPOSE(ss_threads_coroutine_unix_stream_server_new, ss_unix_stream_server_ops,
	    &ss_threads_coroutine_mixin)

SS__COMPOSE(ss_prefork_coroutine_tcp_server_new, ss_tcp_server_ops, &ss_prefork_coroutine_mixin)
SS__COMPOSE(ss_prefork_coroutine_udp_server_new, ss_udp_server_ops, &ss_prefork_coroutine_mixin)
SS__COMPOSE(ss_prefork_coroutine_unix_stream_server_new, ss_unix_stream_server_ops,
	    &ss_prefork_coroutine_mixin)
