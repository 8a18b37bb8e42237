/*
 * tap.c - the TAP emitter.  Output goes to stdout with a flush after every
 * line; a mutex keeps lines whole when threads report.
 */
#include "tap.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static int planned = -1;
static int run;
static int failed;

void tap_plan(int n)
{
	pthread_mutex_lock(&mu);
	planned = n;
	printf("1..%d\n", n);
	fflush(stdout);
	pthread_mutex_unlock(&mu);
}

void tap_skip_all(const char *why, ...)
{
	va_list ap;

	printf("1..0 # SKIP ");
	va_start(ap, why);
	vprintf(why, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(0);
}

int tap_done(void)
{
	pthread_mutex_lock(&mu);
	if (planned < 0) {
		printf("1..%d\n", run);
		planned = run;
	} else if (planned != run) {
		printf("# planned %d tests but ran %d\n", planned, run);
		failed++;
	}
	if (failed)
		printf("# failed %d of %d tests\n", failed, run);
	fflush(stdout);
	pthread_mutex_unlock(&mu);
	return failed ? 1 : 0;
}

static void vline(const char *prefix, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
static void vline(const char *prefix, const char *fmt, va_list ap)
{
	char buf[2048];
	char *p, *nl;

	vsnprintf(buf, sizeof buf, fmt, ap);
	/* one "# " per line so multi-line diagnostics stay comments */
	for (p = buf; ; p = nl + 1) {
		nl = strchr(p, '\n');
		if (nl)
			*nl = '\0';
		printf("%s%s\n", prefix, p);
		if (!nl || !nl[1])
			break;
	}
	fflush(stdout);
}

void tap_diag(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&mu);
	va_start(ap, fmt);
	vline("# ", fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&mu);
}

void tap_skip(int n, const char *why, ...)
{
	char buf[512];
	va_list ap;

	va_start(ap, why);
	vsnprintf(buf, sizeof buf, why, ap);
	va_end(ap);
	pthread_mutex_lock(&mu);
	while (n-- > 0)
		printf("ok %d # skip %s\n", ++run, buf);
	fflush(stdout);
	pthread_mutex_unlock(&mu);
}

void tap_bail(const char *why, ...)
{
	va_list ap;

	printf("Bail out! ");
	va_start(ap, why);
	vprintf(why, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(255);
}

static bool report(bool pass, const char *file, int line, const char *extra,
		   const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));
static bool report(bool pass, const char *file, int line, const char *extra,
		   const char *fmt, va_list ap)
{
	char name[1024];

	vsnprintf(name, sizeof name, fmt, ap);
	pthread_mutex_lock(&mu);
	run++;
	if (!pass)
		failed++;
	printf("%sok %d - %s\n", pass ? "" : "not ", run, name);
	if (!pass) {
		printf("#   Failed test '%s'\n#   at %s line %d.\n", name, file, line);
		if (extra)
			printf("%s", extra);
	}
	fflush(stdout);
	pthread_mutex_unlock(&mu);
	return pass;
}

bool tap_ok_at(bool pass, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	bool r;

	va_start(ap, fmt);
	r = report(pass, file, line, NULL, fmt, ap);
	va_end(ap);
	return r;
}

bool tap_is_int_at(long long got, long long want, const char *file, int line,
		   const char *fmt, ...)
{
	char extra[256];
	va_list ap;
	bool r;

	snprintf(extra, sizeof extra, "#          got: %lld\n#     expected: %lld\n",
		 got, want);
	va_start(ap, fmt);
	r = report(got == want, file, line, extra, fmt, ap);
	va_end(ap);
	return r;
}

bool tap_is_str_at(const char *got, const char *want, const char *file,
		   int line, const char *fmt, ...)
{
	char extra[1024];
	bool pass;
	va_list ap;
	bool r;

	pass = (got && want) ? strcmp(got, want) == 0 : got == want;
	snprintf(extra, sizeof extra, "#          got: '%s'\n#     expected: '%s'\n",
		 got ? got : "(null)", want ? want : "(null)");
	va_start(ap, fmt);
	r = report(pass, file, line, extra, fmt, ap);
	va_end(ap);
	return r;
}
