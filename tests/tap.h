/*
 * tap.h - a small TAP emitter (libtap's shape): plan, ok, is, diag, skip,
 * done.  Every line is flushed at once; forked children must end with
 * _exit() so they never re-flush the parent's output.  Call sites are
 * recorded by the macros and printed with got/expected on failure.
 */
#ifndef TAP_H
#define TAP_H

#include <stdbool.h>
#include <stddef.h>

/* Announce n tests (1..n).  Use tap_done() instead when the count is not
 * known in advance. */
void tap_plan(int n);
/* Skip the whole program: "1..0 # SKIP why", exit 0. */
void tap_skip_all(const char *why, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Print "1..n" if no plan was given, and return the exit status to use
 * (0 when every test passed). */
int tap_done(void);
/* A comment line on stdout ("# ..."). */
void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Mark the next n tests as skipped with a reason. */
void tap_skip(int n, const char *why, ...) __attribute__((format(printf, 2, 3)));
/* Stop the program: "Bail out! why", exit 255. */
void tap_bail(const char *why, ...) __attribute__((format(printf, 1, 2), noreturn));

bool tap_ok_at(bool pass, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
bool tap_is_int_at(long long got, long long want, const char *file, int line,
		   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
bool tap_is_str_at(const char *got, const char *want, const char *file,
		   int line, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define ok(pass, ...) tap_ok_at(!!(pass), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, want, ...) \
	tap_is_int_at((long long)(got), (long long)(want), __FILE__, __LINE__, __VA_ARGS__)
#define is_str(got, want, ...) tap_is_str_at((got), (want), __FILE__, __LINE__, __VA_ARGS__)
#define pass(...) tap_ok_at(true, __FILE__, __LINE__, __VA_ARGS__)
#define fail(...) tap_ok_at(false, __FILE__, __LINE__, __VA_ARGS__)

#endif
