/*
 * echo_tcp.c - an echo server over TCP: Python's
 *     ThreadingTCPServer(("127.0.0.1", 9999), EchoHandler).serve_forever()
 * composed in C.  The handler, the command line and the signal setup are
 * in common.c, shared with the other echo servers.
 *
 *   echo_tcp [-m MODEL] [-w N] [-s STACK] [-g GRACE_SECONDS] [ADDRESS]
 */
#include "common.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
	struct echo_opts opt;	/* -m threading -g 3 127.0.0.1:9999 by default */
	char addr[SS_ADDRSTRLEN];
	ss_error err;
	ss_server *server;
	int rc;

	echo_parse_args(argc, argv, "127.0.0.1:9999", &opt);

	/* A server is a kind (TCP) + a model (the mixin) + a handler. */
	server = ss_server_new(&ss_tcp_server_ops, opt.mixin, opt.address,
			       &echo_handler, 0, &err);
	if (!server)
		return echo_fail(&err);	/* "bind 127.0.0.1:9999: Address ..." */

	/* At stop, requests in flight get opt.grace seconds, then are cut. */
	server->close_grace = opt.grace;
	server->workers = opt.workers;	/* -w: pool, prefork, coroutine */
	if (opt.stack_size)		/* -s: thread and coroutine stacks */
		server->thread_stack_size = server->coroutine_stack_size = opt.stack_size;
	/* SIGINT / SIGTERM call ss_server_shutdown(server). */
	echo_stop_on_signals(server);

	printf("listening on %s\n", ss_server_address(server, addr, sizeof addr));
	fflush(stdout);
	rc = ss_server_serve_forever(server, 0.5);	/* until a signal */
	if (rc < 0)
		fprintf(stderr, "echo_tcp: serve %s: %s\n", addr, strerror(-rc));

	/* Requests in flight get opt.grace seconds, then are cut. */
	ss_server_close(server);
	ss_server_free(server);
	return rc < 0 ? 1 : 0;
}
