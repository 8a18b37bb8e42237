/*
 * echo_unix_dgram.c - an echo server over a unix datagram socket: echo_tcp.c with
 * another server kind, so the whole run is echo_main in common.c.
 *
 *   echo_unix_dgram [-m sync|threading|forking] [-g GRACE_SECONDS] [ADDRESS]
 *   (default ADDRESS ./echo.sock)
 */
#include "common.h"

int main(int argc, char **argv)
{
	return echo_main(argc, argv, &ss_unix_dgram_server_ops, "./echo.sock");
}
