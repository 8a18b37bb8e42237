/*
 * sync.c - the sync model (Python's plain TCPServer / UDPServer): every
 * request runs to its end inline, in the thread that runs the loop, so
 * there is nothing in flight between loop turns and nothing to tear down.
 */
#include <socketserver.h>

/* No state to allocate.  Returns 0. */
static int sync_init(ss_server *s)
{
	return 0;
}

/* Run the request inline through the server's own process_request
 * (ss_base_process_request unless overridden), which runs and frees it.
 * Returns its result. */
static int sync_process_request(ss_server *s, ss_request *r)
{
	return s->ops->process_request(s, r);
}

/* Nothing runs between loop turns: nothing to reap. */
static void sync_service_actions(ss_server *s)
{
}

/* Every request has ended by the time the loop stops: nothing to wait
 * for, whatever the grace period. */
static void sync_server_close(ss_server *s, double grace)
{
}

/* No state to free. */
static void sync_destroy(ss_server *s)
{
}

/* Nothing is ever in flight outside process_request. */
static size_t sync_active_count(ss_server *s)
{
	return 0;
}

const ss_mixin ss_sync_mixin = {
	.name = "sync",
	.init = sync_init,
	.process_request = sync_process_request,
	.service_actions = sync_service_actions,
	.server_close = sync_server_close,
	.destroy = sync_destroy,
	.active_count = sync_active_count,
};
