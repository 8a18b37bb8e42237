/*
 * common.h - what the echo servers share: the one echo handler (it serves
 * every kind and every model), the command line, the signals that stop a
 * server, and the whole run for the kinds that need nothing special.
 */
#ifndef ECHO_COMMON_H
#define ECHO_COMMON_H

#include <socketserver.h>

#include <stdbool.h>
#include <stdio.h>

/* What the command line of an echo server says. */
struct echo_opts {
	const ss_mixin *mixin;	/* -m MODEL; default threading */
	const char *address;	/* ADDRESS operand; default the kind's own */
	double grace;		/* -g SECONDS requests in flight get at
				   shutdown before they are cut; default 3 */
	int workers;		/* -w N threads or processes of the pool,
				   prefork and coroutine models; 0: the
				   model's default */
	size_t stack_size;	/* -s SIZE of thread and coroutine stacks;
				   0: the library's defaults */
};

/* Echo every byte of a stream, or each datagram whole, to its sender. */
extern const ss_handler echo_handler;

/*
 * Parse `prog [-m MODEL] [-w N] [-s STACK] [-g GRACE_SECONDS] [ADDRESS]`
 * into *opt.
 * -h prints the usage to stdout and exits 0; bad usage prints it to
 * stderr and exits 2.  Returns only when opt is complete.
 */
void echo_parse_args(int argc, char **argv, const char *default_address,
		     struct echo_opts *opt);

/* Write the library's model names to f, separated by sep (for usage
 * texts of servers that parse their own command line). */
void echo_print_models(FILE *f, const char *sep);

/* Parse a number of seconds (a finite number, as -g takes).  Returns
 * false if text is not one. */
bool echo_parse_seconds(const char *text, double *out);

/* Parse a worker count (1..4096, as -w takes); -1 if text is not one. */
int echo_parse_count(const char *text);

/* Parse a stack size (bytes or k/m suffix, 16k..64m, as -s takes); 0 if
 * text is not one. */
size_t echo_parse_size(const char *text);

/* Set what the options say on a new server: grace, workers, stacks. */
void echo_apply_opts(ss_server *server, const struct echo_opts *opt);

/* Print "prog: <err->msg>" on stderr; returns the exit status 2. */
int echo_fail(const ss_error *err);

/* SIGINT and SIGTERM call ss_server_shutdown(server), a second one
 * ss_server_cut(server); SIGPIPE, SIGHUP, SIGUSR1, SIGUSR2 ignored. */
void echo_stop_on_signals(ss_server *server);

/*
 * The whole echo server for a kind: parse the command line, create the
 * server, say "listening on ADDRESS", serve until SIGINT / SIGTERM, close
 * within the grace period and free.  Returns the exit status.
 */
int echo_main(int argc, char **argv, const ss_server_ops *ops,
	      const char *default_address);

#endif /* ECHO_COMMON_H */
