/*
 * prefork_coroutine.c - the "multi-process + coroutine" model: prefork's
 * engine (mixins/prefork.c) with every worker process running a loop
 * full of coroutines (the coroutine model) on the shared listener, so
 * one server uses every core.  Options: workers (0: one per core),
 * coroutine_stack_size, close_grace, and prefork's max_requests.
 */
#include "ss_internal.h"

/* Every worker process runs the coroutine model's loop. */
SS__PREFORK_MIXIN(ss_prefork_coroutine_mixin, "prefork+coroutine", ss_coroutine_mixin)

SS__COMPOSE(ss_prefork_coroutine_tcp_server_new, ss_tcp_server_ops, &ss_prefork_coroutine_mixin)
SS__COMPOSE(ss_prefork_coroutine_udp_server_new, ss_udp_server_ops, &ss_prefork_coroutine_mixin)
SS__COMPOSE(ss_prefork_coroutine_unix_stream_server_new, ss_unix_stream_server_ops,
	&ss_prefork_coroutine_mixin)
