/*
 * stageutil.c - the helpers of stageutil.h: the staged install, a shell
 * with pkg-config pointed at it, and README.md's C blocks.
 */
#include "stageutil.h"
#include "tap.h"
#include "testutil.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SH_TIMEOUT_MS 120000	/* a compile under a sanitizer, on a busy machine */

static char stage[PATH_MAX];

const char *ts_stage(void)
{
	char dir[PATH_MAX + 32], pc[PATH_MAX + 64];

	if (stage[0])
		return stage;
	snprintf(stage, sizeof stage, "%s/stage", tu_build_dir());
	snprintf(dir, sizeof dir, "%s/lib/pkgconfig", stage);
	snprintf(pc, sizeof pc, "%s/socketserver.pc", dir);
	if (access(pc, R_OK) < 0)
		tap_bail("%s: %s (scons check installs it before the tests run)", pc,
			 strerror(errno));
	if (setenv("PKG_CONFIG_PATH", dir, 1) < 0)
		tap_bail("setenv: %s", strerror(errno));
	return stage;
}

const char *ts_cc(void)
{
#if defined(__clang__)
#define CC "clang"
#else
#define CC "cc"
#endif
#if TU_TSAN
	return CC " -fsanitize=thread";
#elif TU_SANITIZED
	return CC " -fsanitize=address,undefined";
#else
	return CC;
#endif
#undef CC
}

int ts_sh(char *out, size_t size, const char *fmt, ...)
{
	const char *argv[] = { "sh", "-c", NULL, NULL };
	char *cmd, *full, rest[4096];
	va_list ap;
	pid_t pid;
	int fd;

	va_start(ap, fmt);
	if (vasprintf(&cmd, fmt, ap) < 0)
		tap_bail("out of memory");
	va_end(ap);
	if (asprintf(&full, "exec 2>&1; %s", cmd) < 0)
		tap_bail("out of memory");
	argv[2] = full;
	pid = tu_spawn("/bin/sh", argv, NULL, &fd, NULL);
	if (tu_read_until(fd, out, size, false, SH_TIMEOUT_MS) > 0)
		while (tu_read_until(fd, rest, sizeof rest, false, SH_TIMEOUT_MS) > 0)
			;	/* more than out holds: drained, so it can end */
	close(fd);
	free(full);
	free(cmd);
	return tu_wait_exit(pid, SH_TIMEOUT_MS, NULL);
}

char *ts_read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text = NULL;
	size_t len = 0;
	int e;

	if (!f)
		return NULL;
	if (getdelim(&text, &len, '\0', f) < 0 && !feof(f)) {
		e = errno;
		free(text);
		fclose(f);
		errno = e;
		return NULL;
	}
	fclose(f);
	if (!text)
		text = strdup("");
	return text;
}

char *ts_write_tmp(const char *name, const char *text)
{
	char *path;
	FILE *f;

	if (asprintf(&path, "%s/%s", tu_tmpdir(), name) < 0)
		tap_bail("out of memory");
	if (!(f = fopen(path, "w")) || fputs(text, f) < 0 || fclose(f) != 0)
		tap_bail("write %s: %s", path, strerror(errno));
	return path;
}

/* Append line and a newline to the malloc'd *code. */
static void append_line(char **code, const char *line)
{
	char *more;

	if (asprintf(&more, "%s%s\n", *code, line) < 0)
		tap_bail("out of memory");
	free(*code);
	*code = more;
}

int ts_readme_blocks(ts_block *b)
{
	char path[PATH_MAX + 64], *text, *line, *next, *code = NULL;
	char heading[sizeof b->heading] = "";
	bool fenced = false;	/* inside a ``` block of any language */
	int n = 0, lineno = 0;

	snprintf(path, sizeof path, "%s/../README.md", tu_build_dir());
	if (!(text = ts_read_text(path)))
		tap_bail("%s: %s", path, strerror(errno));
	for (line = text; *line; line = next) {
		next = line + strcspn(line, "\n");
		if (*next)
			*next++ = '\0';
		lineno++;
		if (!strncmp(line, "```", 3)) {
			fenced = !fenced;
			if (fenced && !strcmp(line, "```c")) {
				if (n == TS_MAX_BLOCKS)
					tap_bail("README.md: more than %d C blocks", TS_MAX_BLOCKS);
				b[n].line = lineno + 1;
				snprintf(b[n].heading, sizeof b[n].heading, "%s", heading);
				if (!(code = strdup("")))
					tap_bail("out of memory");
			} else if (!fenced && code) {
				b[n++].text = code;
				code = NULL;
			}
		} else if (code) {
			append_line(&code, line);
		} else if (!fenced && line[0] == '#') {
			snprintf(heading, sizeof heading, "%s", line + strspn(line, "# "));
		}
	}
	if (code)
		tap_bail("README.md: the C block at line %d has no end", b[n].line);
	free(text);
	return n;
}
