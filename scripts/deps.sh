#!/bin/sh
# Install what building and testing need on Debian 12, only if missing:
# scons, a C compiler, clang, prove (perl), OpenSSL's headers and its
# command (the TLS tests talk to the servers with `openssl s_client`),
# pkg-config (the tests build the README's programs as a user of the
# installed library does), and ps for bench/run.
# Run as root (or with sudo available); does nothing when all is present.
set -e
need=""
command -v scons >/dev/null 2>&1 || need="$need scons"
command -v gcc >/dev/null 2>&1 || need="$need gcc"
command -v clang >/dev/null 2>&1 || need="$need clang"
command -v prove >/dev/null 2>&1 || need="$need perl"
[ -e /usr/include/openssl/ssl.h ] || need="$need libssl-dev"
command -v openssl >/dev/null 2>&1 || need="$need openssl"
command -v pkg-config >/dev/null 2>&1 || need="$need pkg-config"
command -v ps >/dev/null 2>&1 || need="$need procps"	# bench/run
[ -e /usr/include/pthread.h ] || need="$need libc6-dev"
if [ -n "$need" ]; then
	SUDO=""
	[ "$(id -u)" = 0 ] || SUDO=sudo
	echo "deps: installing$need" >&2
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need >&2
fi
