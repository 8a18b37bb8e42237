/*
 * echo_tls.c - the echo server over TLS.  The handler is echo_tcp's own
 * (echo_handler in common.c), unchanged: the TLS layer sits under the
 * stream reader and writer, so the handler never knows.  With --ca,
 * clients must present a certificate signed by that CA.  SIGHUP reloads
 * the certificate and key on a thread of its own, off the accept loop (a
 * broken file keeps the old ones serving).
 *
 *   echo_tls [-m MODEL] [-w N] [-g GRACE] --cert FILE --key FILE [--ca FILE]
 *            [--pass PASSPHRASE] [ADDRESS]
 */
#include "common.h"
#include <socketserver/tls.h>

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

/*
 * The reload runs on a thread of its own, never on the loop: reading the
 * files may be slow (a network filesystem), and a loop busy reloading
 * would accept nobody and not see SIGTERM.  The SIGHUP handler only posts
 * a semaphore (sem_post is async-signal-safe); the thread waits on it.
 *
 * The forking and prefork models fork from the loop while this thread
 * may be inside OpenSSL, and a child forked while it holds one of
 * OpenSSL's locks would wait for that lock for ever.  So a reload holds
 * `mu` and a fork takes it first (pthread_atfork): a fork waits for a
 * reload in progress, which is short (the files are regular files of at
 * most 1 MiB), and a reload never runs across a fork.  Only under those
 * models can a reload stuck in its filesystem still hold up the loop.
 */
#define RELOAD_STOP_SECS 2	/* at exit, how long a reload may finish */

static struct {
	sem_t hup;		/* posted by SIGHUP, and once to stop */
	pthread_mutex_t mu;	/* held by a reload and around fork() */
	atomic_bool stopping;	/* the thread must end */
	ss_tls_config *tls;	/* what it reloads */
	pthread_t thread;
} reloader = { .mu = PTHREAD_MUTEX_INITIALIZER };

/* SIGHUP: wake the reload thread (async-signal-safe). */
static void on_hup(int sig)
{
	int saved = errno;

	sem_post(&reloader.hup);
	errno = saved;
}

/* Around fork(), in the forking thread: wait for a reload in progress
 * and keep the next one from starting; release in parent and child. */
static void fork_prepare(void)
{
	pthread_mutex_lock(&reloader.mu);
}

static void fork_done(void)
{
	pthread_mutex_unlock(&reloader.mu);
}

/* The reload thread: after each SIGHUP (a burst of them is one reload)
 * reload the TLS configuration and say how it went, until told to
 * stop. */
static void *reload_main(void *arg)
{
	ss_error err;
	int rc;

	for (;;) {
		while (sem_wait(&reloader.hup) < 0 && errno == EINTR)
			;
		while (sem_trywait(&reloader.hup) == 0)
			;
		if (atomic_load(&reloader.stopping))
			return NULL;
		pthread_mutex_lock(&reloader.mu);
		rc = ss_tls_config_reload(reloader.tls, &err);
		pthread_mutex_unlock(&reloader.mu);
		if (rc < 0)
			fprintf(stderr, "echo_tls: reload failed, keeping the old "
				"certificates: %s\n", err.msg);
		else
			fprintf(stderr, "echo_tls: reloaded certificates\n");
	}
}

/* Start the reload thread for tls and let SIGHUP wake it.  Returns 0,
 * or -1 with the reason on stderr. */
static int reload_on_sighup(ss_tls_config *tls)
{
	struct sigaction sa;
	int rc;

	reloader.tls = tls;
	if (sem_init(&reloader.hup, 0, 0) < 0) {
		fprintf(stderr, "echo_tls: sem_init: %s\n", strerror(errno));
		return -1;
	}
	if ((rc = pthread_atfork(fork_prepare, fork_done, fork_done)) != 0 ||
	    (rc = pthread_create(&reloader.thread, NULL, reload_main, NULL)) != 0) {
		fprintf(stderr, "echo_tls: reload thread: %s\n", strerror(rc));
		sem_destroy(&reloader.hup);
		return -1;
	}
	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_hup;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGHUP, &sa, NULL);
	return 0;
}

/* Stop the reload thread, giving a reload in progress RELOAD_STOP_SECS
 * to finish.  Returns false when it did not: it still uses the TLS
 * configuration, which must then not be freed. */
static bool reload_stop(void)
{
	struct timespec ts;

	signal(SIGHUP, SIG_IGN);
	atomic_store(&reloader.stopping, true);
	sem_post(&reloader.hup);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += RELOAD_STOP_SECS;
	if (pthread_timedjoin_np(reloader.thread, NULL, &ts) != 0)
		return false;
	sem_destroy(&reloader.hup);
	return true;
}

/* ------------------------------------------------------------------ */
/* The program                                                         */
/* ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
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
	server = ss_server_new(&ss_tcp_server_ops, a.echo.mixin, a.echo.address,
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
	echo_apply_opts(server, &a.echo);	/* -g, -w, -s */
	echo_stop_on_signals(server);
	if (reload_on_sighup(tls) < 0) {
		ss_server_free(server);
		ss_tls_config_free(tls);
		return 2;
	}

	printf("listening on %s\n", ss_server_address(server, addr, sizeof addr));
	fflush(stdout);
	rc = ss_server_serve_forever(server, 0.5);	/* until a signal */
	if (rc < 0)
		fprintf(stderr, "echo_tls: serve %s: %s\n", addr, strerror(-rc));

	ss_server_close(server);
	ss_server_free(server);
	if (!reload_stop()) {
		/* A reload stuck in a filesystem still uses tls: exit
		 * without waiting for it (nor freeing what it uses). */
		fprintf(stderr, "echo_tls: a reload is still running; exiting without it\n");
		fflush(stdout);
		_exit(rc < 0 ? 1 : 0);
	}
	ss_tls_config_free(tls);	/* after the server and the reloads */
	return rc < 0 ? 1 : 0;
}
