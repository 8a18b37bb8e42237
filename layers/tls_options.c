/*
 * tls_options.c - the TLS options' defaults, one copy for both builds:
 * with OpenSSL (tls.c) and with tls=no (tls_none.c).
 */
#include "ss_internal.h"
#include <socketserver/tls.h>

#include <string.h>

/* The defaults tls.h documents. */
void ss_tls_options_init(ss_tls_options *o)
{
	memset(o, 0, sizeof *o);
	o->min_version = "1.2";
	o->verify_client = SS_TLS_VERIFY_NONE;
	o->session_tickets = true;
	o->handshake_timeout = 5.0;
}
