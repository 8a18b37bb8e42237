/*
 * prefork_coroutine.c - the "multi-process + coroutine" model: prefork's
 * engine (mixins/prefork.c) with every worker process running a loop
 * full of coroutines (the coroutine model) on the shared listener, so
 * one server uses every core.  Options: workers (0: one per core),
 * coroutine_stack_size, close_grace, and prefork's max_requests.
 */
#include "ss_internal.h"

/* Record the coroutine model as the one every worker runs. */
static int prefork_coroutine_init(ss_server *s)
{
	return ss__prefork_init(s, &ss_coroutine_mixin);
}

const ss_mixin ss_prefork_coroutine_mixin = {
	.name = "prefork+coroutine",
	.init = prefork_coroutine_init,
	.process_request = ss__prefork_process_request,
	.service_actions = ss__prefork_service_actions,
	.server_close = ss__prefork_server_close,
	.destroy = ss__prefork_destroy,
	.active_count = ss__prefork_active_count,
	.serve_forever = ss__prefork_serve_forever,
};

SS__COMPOSE(ss_prefork_coroutine_tcp_server_new, ss_tcp_server_ops, &ss_prefork_coroutine_mixin)
SS__COMPOSE(ss_prefork_coroutine_udp_server_new, ss_udp_server_ops, &ss_prefork_coroutine_mixin)
SS__COMPOSE(ss_prefork_coroutine_unix_stream_server_new, ss_unix_stream_server_ops,
	&ss_prefork_coroutine_mixin)
