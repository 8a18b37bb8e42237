/*
 * echo_udp.c - an echo server over UDP: echo_tcp.c with
 * another server kind, so the whole run is echo_main in common.c.
 *
 *   echo_udp [-m sync|threading|forking] [-g GRACE_SECONDS] [ADDRESS]
 *   (default ADDRESS 127.0.0.1:9999)
 */
#include "common.h"

int main(int argc, char **argv)
{
	return echo_main(argc, argv, &ss_udp_server_ops, "127.0.0.1:9999");
}
