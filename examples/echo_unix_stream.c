/*
 * echo_unix_stream.c - an echo server over a unix stream socket: echo_tcp.c with
 * another server kind, so the whole run is echo_main in common.c.
 *
 *   echo_unix_stream [-m sync|threading|forking] [-g GRACE_SECONDS] [ADDRESS]
 *   (default ADDRESS ./echo.sock)
 */
#include "common.h"

int main(int argc, char **argv)
{
	return echo_main(argc, argv, &ss_unix_stream_server_ops, "./echo.sock");
}
