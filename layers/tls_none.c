/*
 * tls_none.c - the TLS API of a library built with tls=no, compiled
 * instead of tls.c: the same exported functions, without OpenSSL.  No
 * configuration can be made (ss_tls_config_new fails with -ENOTSUP and
 * says why), so no server uses TLS and no request is a TLS one.
 */
#include "ss_internal.h"
#include <socketserver/tls.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define NOT_BUILT "TLS support is not built in (built with tls=no)"

ss_tls_config *ss_tls_config_new(const ss_tls_options *o, ss_error *err)
{
	ss__error_set(err, -ENOTSUP, NOT_BUILT);
	return NULL;
}

int ss_tls_config_reload(ss_tls_config *c, ss_error *err)
{
	ss__error_set(err, -ENOTSUP, NOT_BUILT);
	return -ENOTSUP;
}

void ss_tls_config_free(ss_tls_config *c)
{
}

int ss_server_use_tls(ss_server *s, ss_tls_config *c)
{
	if (!s || !c)
		return -EINVAL;
	snprintf(s->errmsg, sizeof s->errmsg, "%s", NOT_BUILT);
	return -ENOTSUP;
}

bool ss_tls_active(const ss_request *r)
{
	return false;
}

const char *ss_tls_version(const ss_request *r)
{
	return NULL;
}

const char *ss_tls_cipher(const ss_request *r)
{
	return NULL;
}

const char *ss_tls_alpn(const ss_request *r)
{
	return NULL;
}

const char *ss_tls_server_name(const ss_request *r)
{
	return NULL;
}

const char *ss_tls_peer_subject(const ss_request *r, char *buf, size_t len)
{
	return NULL;
}

bool ss_tls_session_reused(const ss_request *r)
{
	return false;
}
