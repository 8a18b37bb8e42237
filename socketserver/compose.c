/*
 * compose.c - the predefined servers: a kind (ops) plus a model (mixin),
 * one line each, as ThreadingTCPServer is one line in Python.
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
