/*
 * faultutil.h - fault injection for the tests through the library's table
 * of system calls (ss__sys in ss_internal.h).
 *
 * fu_install() swaps every ss__sys entry the tests care about for a
 * wrapper that passes through to the real call until a schedule tells it
 * to fail.  Schedules live in atomics, so a test may change them while
 * server threads run (TSan-clean); only fu_install() and fu_reset() touch
 * ss__sys itself, and must run while no server is serving.
 *
 * Also here: the data pattern the I/O tests send and check.  Servers,
 * clients and waiting are testutil.h's.
 */
#ifndef FAULTUTIL_H
#define FAULTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The calls a schedule can be set for. */
enum fu_call {
	FU_ACCEPT4,
	FU_SEND,
	FU_RECV,
	FU_SENDTO,
	FU_RECVFROM,
	FU_POLL,
	FU_PTHREAD_CREATE,
	FU_FORK,
	FU_NCALLS
};

/* Put the wrappers into ss__sys (all schedules off: pure pass-through). */
void fu_install(void);
/* Turn every schedule off, zero the counters, restore the real calls. */
void fu_reset(void);

/* The next n calls of c fail with err (n < 0: every call until changed;
 * n == 0: stop failing). */
void fu_fail_next(enum fu_call c, int n, int err);
/* Every nth call of c fails with err (0: off). */
void fu_fail_every(enum fu_call c, int nth, int err);
/* send/recv/sendto/recvfrom move at most max bytes per call (0: no cap). */
void fu_cap_len(enum fu_call c, size_t max);
/* Calls of c seen by the wrapper, and how many of them it failed. */
long fu_calls(enum fu_call c);
long fu_failures(enum fu_call c);
/* Connections accept4 handed out (calls that found none, EAGAIN, are
 * not connections: a test waiting for the nth accept counts these). */
long fu_accepted(void);
/* send() calls the library made without MSG_NOSIGNAL (should be 0). */
long fu_sends_without_nosignal(void);

/* The byte at offset i of the tests' data pattern (not periodic at any
 * power of two, so shifted or repeated blocks are caught). */
static inline unsigned char fu_pattern(size_t i)
{
	return (unsigned char)((i * 7u + (i >> 8) * 13u + (i >> 16)) & 0xff);
}
/* Fill buf with the pattern starting at offset off. */
void fu_fill(unsigned char *buf, size_t len, size_t off);
/* Offset of the first byte that breaks the pattern, or len if none. */
size_t fu_check(const unsigned char *buf, size_t len, size_t off);

#endif /* FAULTUTIL_H */
