/*
 * common.c - the code every echo server shares: the echo handler, the
 * command line (-m MODEL, -g GRACE, ADDRESS), the signals that stop
 * serve_forever, and echo_main, the whole program for a server kind.
 */
#include "common.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ------------------------------------------------------------------ */
/* The handler                                                         */
/* ------------------------------------------------------------------ */

/*
 * Write back whatever comes until EOF.  ss_read_view hands out the input
 * where the library already holds it, so the handler keeps no buffer of
 * its own: under the coroutine model an idle connection's stack stays one
 * page.  For a datagram the first read returns the whole datagram, the
 * second 0; the writes form the reply, which the library sends when the
 * request ends.  On a stream the writer's buffer goes out before the next
 * read waits, so an interactive client sees each line come back at once.
 * Returns 0 at EOF or a negative errno.
 */
static int echo_handle(ss_request *r)
{
	const void *data;
	ssize_t n, w;

	while ((n = ss_read_view(r, &data, SIZE_MAX)) > 0) {
		w = ss_write_all(r, data, (size_t)n);
		if (w < 0)
			return (int)w;
	}
	return (int)n;
}

const ss_handler echo_handler = {
	.handle = echo_handle,
};

/* ------------------------------------------------------------------ */
/* The command line                                                    */
/* ------------------------------------------------------------------ */

/* Write the library's model names, separated by sep, to f. */
static void print_models(FILE *f, const char *sep)
{
	const ss_mixin *m;
	size_t i;

	for (i = 0; (m = ss_mixin_at(i)); i++)
		fprintf(f, "%s%s", i ? sep : "", m->name);
}

/* The usage text, to f. */
static void usage(FILE *f, const char *default_address)
{
	const char *prog = program_invocation_short_name;

	fprintf(f, "usage: %s [-m ", prog);
	print_models(f, "|");
	fprintf(f, "] [-w N] [-s STACK] [-g GRACE_SECONDS] [ADDRESS]\n"
		"Echo back every byte of each connection, or each datagram to its\n"
		"sender.\n"
		"  -m MODEL  how requests run: ");
	print_models(f, ", ");
	fprintf(f, " (default threading)\n"
		"  -w N      threads or processes for the models that keep a fixed\n"
		"            number of workers (default: the model's own)\n"
		"  -s STACK  stack size of each thread or coroutine, in bytes or\n"
		"            with a k or m suffix, 16k to 64m (default: the\n"
		"            library's, 256k for threads, 128k for coroutines)\n"
		"  -g SECS   on SIGINT/SIGTERM, requests in flight get SECS seconds,\n"
		"            then are cut (default 3; < 0 waits for them all)\n"
		"  -h        print this help and exit\n"
		"  ADDRESS   where to listen (default %s)%s\n"
		"Prints \"listening on ADDRESS\" when ready; stop it with Ctrl-C.\n",
		default_address,
		default_address[0] == '/' || default_address[0] == '.' ||
		default_address[0] == '@' ? "" : "; port 0 picks a free port");
}

/* Bad usage: say why, then the usage, on stderr; exit 2.  Why quotes the
 * command line, so it is escaped and stays one line. */
static void __attribute__((noreturn, format(printf, 2, 3)))
bad_usage(const char *default_address, const char *fmt, ...)
{
	char why[256], text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	ss_escape(text, sizeof text, why, strlen(why));
	fprintf(stderr, "%s: %s\n", program_invocation_short_name, text);
	usage(stderr, default_address);
	exit(2);
}

/* Parse a grace period: a finite number of seconds.  false if not. */
static bool parse_seconds(const char *text, double *out)
{
	char *end;

	errno = 0;
	*out = strtod(text, &end);
	return errno == 0 && end != text && *end == '\0' && isfinite(*out);
}

/* Parse a stack size: bytes, or a number with a k or m suffix, from 16 KiB
 * to 64 MiB.  0 if it is not one. */
static size_t parse_size(const char *text)
{
	unsigned long long v;
	char *end;

	if (*text < '0' || *text > '9')
		return 0;
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno || end == text)
		return 0;
	if ((*end == 'k' || *end == 'K') && end[1] == '\0')
		v = v > UINT64_MAX / 1024 ? 0 : v * 1024;
	else if ((*end == 'm' || *end == 'M') && end[1] == '\0')
		v = v > UINT64_MAX / 1048576 ? 0 : v * 1048576;
	else if (*end != '\0')
		return 0;
	if (v < 16 * 1024 || v > 64 * 1048576)
		return 0;
	return (size_t)v;
}

/* Parse a worker count 1..4096; -1 if it is not one. */
static int parse_count(const char *text)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(text, &end, 10);
	if (errno || end == text || *end || v < 1 || v > 4096)
		return -1;
	return (int)v;
}

void echo_parse_args(int argc, char **argv, const char *default_address,
		     struct echo_opts *opt)
{
	int c;

	opt->mixin = &ss_threading_mixin;
	opt->address = default_address;
	opt->grace = 3.0;
	opt->workers = 0;
	opt->stack_size = 0;
	while ((c = getopt(argc, argv, ":m:g:w:s:h")) != -1) {
		switch (c) {
		case 'm':
			opt->mixin = ss_mixin_by_name(optarg);
			if (!opt->mixin)
				bad_usage(default_address, "unknown model '%s'", optarg);
			break;
		case 'g':
			if (!parse_seconds(optarg, &opt->grace))
				bad_usage(default_address,
					  "bad grace period '%s'", optarg);
			break;
		case 'w':
			opt->workers = parse_count(optarg);
			if (opt->workers < 1)
				bad_usage(default_address,
					  "bad worker count '%s' (1 to 4096)", optarg);
			break;
		case 's':
			opt->stack_size = parse_size(optarg);
			if (!opt->stack_size)
				bad_usage(default_address,
					  "bad stack size '%s' (16k to 64m)", optarg);
			break;
		case 'h':
			usage(stdout, default_address);
			exit(0);
		case ':':
			bad_usage(default_address, "option -%c needs a value", optopt);
		default:
			bad_usage(default_address, "unknown option -%c", optopt);
		}
	}
	if (argc - optind > 1)
		bad_usage(default_address, "too many arguments from '%s'",
			  argv[optind + 1]);
	if (optind < argc)
		opt->address = argv[optind];
}

void echo_print_models(FILE *f, const char *sep)
{
	print_models(f, sep);
}

bool echo_parse_seconds(const char *text, double *out)
{
	return parse_seconds(text, out);
}

int echo_parse_count(const char *text)
{
	return parse_count(text);
}

size_t echo_parse_size(const char *text)
{
	return parse_size(text);
}

void echo_apply_opts(ss_server *server, const struct echo_opts *opt)
{
	server->close_grace = opt->grace;	/* requests in flight at stop */
	server->workers = opt->workers;
	if (opt->stack_size) {
		server->thread_stack_size = opt->stack_size;
		server->coroutine_stack_size = opt->stack_size;
	}
}

int echo_fail(const ss_error *err)
{
	fprintf(stderr, "%s: %s\n", program_invocation_short_name, err->msg);
	return 2;
}

/* ------------------------------------------------------------------ */
/* Signals                                                             */
/* ------------------------------------------------------------------ */

static ss_server *volatile stop_server;	/* what the signals stop */
static volatile sig_atomic_t stop_signals;	/* SIGINT/SIGTERM seen */

/* SIGINT / SIGTERM: the first asks serve_forever to return and the close
 * that follows to give requests in flight their grace period; a second
 * one, during that grace period, cuts them at once.  Async-signal-safe. */
static void on_stop_signal(int sig)
{
	int saved = errno;

	if (stop_signals++ == 0)
		ss_server_shutdown(stop_server);
	else
		ss_server_cut(stop_server);
	errno = saved;
}

void echo_stop_on_signals(ss_server *server)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	/* Nothing to reload or report: a stray SIGHUP, SIGUSR1 or SIGUSR2
	 * must not kill the server and leave its socket file behind
	 * (echo_tls then makes SIGHUP reload its certificates). */
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);

	stop_server = server;
	sa.sa_handler = on_stop_signal;
	sa.sa_flags = SA_RESTART;
	sigaddset(&sa.sa_mask, SIGINT);
	sigaddset(&sa.sa_mask, SIGTERM);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	/* A parent may have left them blocked; we want them. */
	sigprocmask(SIG_UNBLOCK, &sa.sa_mask, NULL);
}

/* ------------------------------------------------------------------ */
/* The whole run                                                       */
/* ------------------------------------------------------------------ */

int echo_main(int argc, char **argv, const ss_server_ops *ops,
	      const char *default_address)
{
	struct echo_opts opt;
	char addr[SS_ADDRSTRLEN];
	ss_error err;
	ss_server *server;
	int rc;

	echo_parse_args(argc, argv, default_address, &opt);
	server = ss_server_new(ops, opt.mixin, opt.address, &echo_handler, 0, &err);
	if (!server)
		return echo_fail(&err);
	echo_apply_opts(server, &opt);
	echo_stop_on_signals(server);

	printf("listening on %s\n", ss_server_address(server, addr, sizeof addr));
	fflush(stdout);
	rc = ss_server_serve_forever(server, 0.5);
	if (rc < 0)
		fprintf(stderr, "%s: serve %s: %s\n", program_invocation_short_name,
			addr, strerror(-rc));
	ss_server_close(server);
	ss_server_free(server);
	return rc < 0 ? 1 : 0;
}
