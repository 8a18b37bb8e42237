/*
 * stageutil.h - for the tests that build programs as a user of the
 * installed library does: the install `scons check` makes into
 * BUILD/stage (the headers, both libraries and a socketserver.pc whose
 * prefix is the stage), a shell whose pkg-config finds it, the compiler
 * that built this test, and the C blocks of README.md.
 *
 * A helper that cannot go on (no stage, no README, out of memory) calls
 * tap_bail(); files are written into tu_tmpdir(), removed at exit.
 */
#ifndef STAGEUTIL_H
#define STAGEUTIL_H

#include <stddef.h>

/* BUILD/stage.  The first call checks that it holds socketserver.pc
 * (bails out if not: `scons check` installs it) and points
 * PKG_CONFIG_PATH at it, for ts_sh and every other child. */
const char *ts_stage(void);

/* The compiler a program built against this build's library needs: the
 * one that built this test ("cc", or "clang"), with this build's
 * sanitizer (whose runtime the library's objects call). */
const char *ts_cc(void);

/* Run the printf-formatted command with /bin/sh, its stdout and stderr
 * into out (size bytes, NUL-terminated; the end is lost if longer).
 * Returns its exit status as tu_wait_exit does (-1 after 120 s). */
int ts_sh(char *out, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A file's whole text (malloc'd, NUL-terminated; the caller frees), or
 * NULL with errno set. */
char *ts_read_text(const char *path);

/* text written to the file name in tu_tmpdir(); returns its path
 * (malloc'd; the caller frees). */
char *ts_write_tmp(const char *name, const char *text);

/* A ```c block of README.md. */
typedef struct ts_block {
	int line;		/* of its first line of code */
	char heading[128];	/* the last heading above it, without #s */
	char *text;		/* its code (malloc'd) */
} ts_block;

#define TS_MAX_BLOCKS 64

/* The ```c blocks of the source tree's README.md (BUILD/../README.md), in
 * order, into b (TS_MAX_BLOCKS).  Returns how many. */
int ts_readme_blocks(ts_block *b);

#endif /* STAGEUTIL_H */
