/*
 * echo_tls.c - the echo server over TLS.  The handler is echo_tcp's own
 * (echo_handler in common.c), unchanged: the TLS layer sits under the
 * stream reader and writer, so the handler never knows.  With --ca,
 * clients must present a certificate signed by that CA.  SIGHUP reloads
 * the certificate and key (a broken file keeps the old ones serving).
 *
 *   echo_tls [-m MODEL] [-w N] [-g GRACE] --cert FILE --key FILE [--ca FILE]
 *            [--pass PASSPHRASE] [ADDRESS]
 */
#include "common.h"
#include "ss_tls.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_ADDRESS "127.0.0.1:8443"

/* What the command line says. */
struct tls_args {
	struct echo_opts echo;	/* -m, -w, -g, ADDRESS */
	const char *cert;	/* --cert FILE (required) */
	const char *key;	/* --key FILE (required) */
	const char *ca;		/* --ca FILE: require client certificates */
	const char *pass;	/* --pass PASSPHRASE of an encrypted key */
};

/* The usage text, to f. */
static void usage(FILE *f)
{
	fprintf(f, "usage: echo_tls [-m ");
	echo_print_models(f, "|");
	fprintf(f, "] [-w N] [-s STACK] [-g GRACE_SECONDS] --cert FILE\n"
		"                --key FILE [--ca FILE] [--pass PASSPHRASE] [ADDRESS]\n"
		"Echo back every byte of each TLS connection.\n"
		"  -m MODEL         how requests run: ");
	echo_print_models(f, ", ");
	fprintf(f, " (default threading)\n"
		"  -w N             threads or processes for the models that keep a fixed\n"
		"                   number of workers (default: the model's own)\n"
		"  -s STACK         stack size of each thread or coroutine (bytes, or\n"
		"                   with a k or m suffix; 16k to 64m)\n"
		"  -g SECS          on SIGINT/SIGTERM, requests in flight get SECS seconds,\n"
		"                   then are cut (default 3; < 0 waits for them all)\n"
		"  --cert FILE      PEM certificate chain\n"
		"  --key FILE       PEM private key\n"
		"  --ca FILE        require client certificates signed by these CAs\n"
		"  --pass PHRASE    passphrase of an encrypted key\n"
		"  -h, --help       print this help and exit\n"
		"  ADDRESS          where to listen (default " DEFAULT_ADDRESS
		"); port 0 picks a free port\n"
		"Prints \"listening on ADDRESS\" when ready; SIGHUP reloads the certificate\n"
		"and key; stop it with Ctrl-C.\n");
}

/* Bad usage: say why and what on the command line was wrong (escaped, so
 * it stays one line), then the usage, on stderr; exit 2. */
static void __attribute__((noreturn)) bad_usage(const char *why, const char *what)
{
	char text[1024];

	ss_escape(text, sizeof text, what, strlen(what));
	fprintf(stderr, "echo_tls: %s%s\n", why, text);
	usage(stderr);
	exit(2);
}

/* Parse the command line into *a; returns only when it is complete. */
static void parse_args(int argc, char **argv, struct tls_args *a)
{
	static const struct option longopts[] = {
		{ "model", required_argument, NULL, 'm' },
		{ "workers", required_argument, NULL, 'w' },
		{ "grace", required_argument, NULL, 'g' },
		{ "stack-size", required_argument, NULL, 's' },
		{ "cert", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' },
		{ "ca", required_argument, NULL, 'a' },
		{ "pass", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	memset(a, 0, sizeof *a);
	a->echo.mixin = &ss_threading_mixin;
	a->echo.address = DEFAULT_ADDRESS;
	a->echo.grace = 3.0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":m:w:g:s:h", longopts, NULL)) != -1) {
		switch (c) {
		case 'm':
			if (!(a->echo.mixin = ss_mixin_by_name(optarg)))
				bad_usage("unknown model ", optarg);
			break;
		case 'w':
			if ((a->echo.workers = echo_parse_count(optarg)) < 1)
				bad_usage("bad number of workers ", optarg);
			break;
		case 'g':
			if (!echo_parse_seconds(optarg, &a->echo.grace))
				bad_usage("bad grace period ", optarg);
			break;
		case 's':
			if (!(a->echo.stack_size = echo_parse_size(optarg)))
				bad_usage("bad stack size (16k to 64m) ", optarg);
			break;
		case 'c': a->cert = optarg; break;
		case 'k': a->key = optarg; break;
		case 'a': a->ca = optarg; break;
		case 'p': a->pass = optarg; break;
		case 'h':
			usage(stdout);
			exit(0);
		case ':':
			bad_usage("option needs a value: ", argv[optind - 1]);
		default:
			bad_usage("unknown option ", argv[optind - 1]);
		}
	}
	if (!a->cert || !a->key)
		bad_usage("--cert FILE and --key FILE are required", "");
	if (argc - optind > 1)
		bad_usage("too many arguments from ", argv[optind + 1]);
	if (optind < argc)
		a->echo.address = argv[optind];
}

/* ------------------------------------------------------------------ */
/* SIGHUP: reload the certificates                                     */
/* ------------------------------------------------------------------ */

static volatile sig_atomic_t reload_requested;

/* Only a flag: the reload itself runs on the loop (service_actions). */
static void on_hup(int sig)
{
	reload_requested = 1;
}

static void reload_on_sighup(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_hup;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGHUP, &sa, NULL);
}

/* service_actions, run on every turn of the loop: after a SIGHUP, reload
 * the TLS configuration (server->data) and say how it went. */
static void reload_if_asked(ss_server *server)
{
	ss_error err;

	ss_tcp_server_ops.service_actions(server);
	if (!reload_requested)
		return;
	reload_requested = 0;
	if (ss_tls_config_reload(server->data, &err) < 0)
		fprintf(stderr, "echo_tls: reload failed, keeping the old certificates: %s\n",
			err.msg);
	else
		fprintf(stderr, "echo_tls: reloaded certificates\n");
}

/* ------------------------------------------------------------------ */
/* The program                                                         */
/* ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
	static ss_server_ops ops;	/* TCP with reload_if_asked */
	struct tls_args a;
	ss_tls_options o;
	ss_tls_config *tls;
	char addr[SS_ADDRSTRLEN];
	ss_error err;
	ss_server *server;
	int rc;

	parse_args(argc, argv, &a);

	/* Load and check the certificate and key before anything listens. */
	ss_tls_options_init(&o);
	o.cert_file = a.cert;
	o.key_file = a.key;
	o.key_password = a.pass;
	if (a.ca) {
		o.ca_file = a.ca;
		o.verify_client = SS_TLS_VERIFY_REQUIRE;
	}
	if (!(tls = ss_tls_config_new(&o, &err)))
		return echo_fail(&err);	/* "TLS key k.pem does not match ..." */

	/* TCP + a model + echo_tcp's handler, with TLS as a layer. */
	ops = ss_tcp_server_ops;
	ops.service_actions = reload_if_asked;
	server = ss_server_new(&ops, a.echo.mixin, a.echo.address,
			       &echo_handler, 0, &err);
	if (!server) {
		ss_tls_config_free(tls);
		return echo_fail(&err);
	}
	if ((rc = ss_server_use_tls(server, tls)) < 0) {
		fprintf(stderr, "echo_tls: %s\n", server->errmsg);
		ss_server_free(server);
		ss_tls_config_free(tls);
		return 2;
	}
	server->data = tls;
	echo_apply_opts(server, &a.echo);	/* -g, -w, -s */
	echo_stop_on_signals(server);
	reload_on_sighup();

	printf("listening on %s\n", ss_server_address(server, addr, sizeof addr));
	fflush(stdout);
	rc = ss_server_serve_forever(server, 0.5);	/* until a signal */
	if (rc < 0)
		fprintf(stderr, "echo_tls: serve %s: %s\n", addr, strerror(-rc));

	ss_server_close(server);
	ss_server_free(server);
	ss_tls_config_free(tls);	/* after the server: it uses it */
	return rc < 0 ? 1 : 0;
}
