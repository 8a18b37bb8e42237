/*
 * compose.c - the predefined servers: a kind (ops) plus a model (mixin),
 * one line each, as ThreadingTCPServer is one line in Python.
 */
#include "ss.h"

#define COMPOSE(fn, ops, mixin)						\
	ss_server *fn(const char *address, const ss_handler *h, ss_error *err) \
	{ return ss_server_new(&(ops), (mixin), address, h, 0, err); }

COMPOSE(ss_tcp_server_new, ss_tcp_server_ops, NULL)
COMPOSE(ss_udp_server_new, ss_udp_server_ops, NULL)
COMPOSE(ss_unix_stream_server_new, ss_unix_stream_server_ops, NULL)
COMPOSE(ss_unix_dgram_server_new, ss_unix_dgram_server_ops, NULL)

COMPOSE(ss_threading_tcp_server_new, ss_tcp_server_ops, &ss_threading_mixin)
COMPOSE(ss_threading_udp_server_new, ss_udp_server_ops, &ss_threading_mixin)
COMPOSE(ss_threading_unix_stream_server_new, ss_unix_stream_server_ops, &ss_threading_mixin)
COMPOSE(ss_threading_unix_dgram_server_new, ss_unix_dgram_server_ops, &ss_threading_mixin)

COMPOSE(ss_forking_tcp_server_new, ss_tcp_server_ops, &ss_forking_mixin)
COMPOSE(ss_forking_udp_server_new, ss_udp_server_ops, &ss_forking_mixin)
COMPOSE(ss_forking_unix_stream_server_new, ss_unix_stream_server_ops, &ss_forking_mixin)
COMPOSE(ss_forking_unix_dgram_server_new, ss_unix_dgram_server_ops, &ss_forking_mixin)
