/*
 * t_readme.c - every C block of README.md builds as it stands, against
 * the install `scons check` makes in BUILD/stage, with cc and pkg-config
 * as the README's Install section says, warnings as errors (-Wall
 * -Wextra, unused parameters allowed, as in the library):
 *
 *  - a block with a main() is a program: compiled and linked with the
 *    shared library;
 *  - a block that opens with "struct NAME {" is that declaration copied
 *    from an installed header: it must match the header's, comments and
 *    spacing aside;
 *  - any other block is a file of its own: compiled with cc -c.
 */
#include "stageutil.h"
#include "tap.h"
#include "testutil.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WARNINGS "-Wall -Wextra -Wno-unused-parameter -Werror"

/* The installed headers, relative to the stage's include dir. */
static const char *const headers[] = {
	"socketserver.h", "socketserver/selector.h", "socketserver/tls.h",
};

/* C text with its comments removed and its spacing reduced to one space
 * where two words meet (malloc'd). */
static char *tokens(const char *c, size_t len)
{
	char *out = malloc(len + 1), *w = out;
	const char *end = c + len;
	bool space = false;

	if (!out)
		tap_bail("out of memory");
	while (c < end) {
		if (c + 1 < end && c[0] == '/' && c[1] == '*') {
			const char *close = strstr(c + 2, "*/");

			c = close && close < end ? close + 2 : end;
			space = true;
		} else if (isspace((unsigned char)*c)) {
			c++;
			space = true;
		} else {
			if (space && w > out && (isalnum((unsigned char)w[-1]) || w[-1] == '_') &&
			    (isalnum((unsigned char)*c) || *c == '_'))
				*w++ = ' ';
			*w++ = *c++;
			space = false;
		}
	}
	*w = '\0';
	return out;
}

/* The declaration that opens with the line first ("struct NAME {") in
 * an installed header: from that line to the next line "};" (malloc'd),
 * or NULL if no header has it. */
static char *header_declaration(const char *first)
{
	size_t len = strlen(first);
	char path[PATH_MAX + 64], *text, *start, *end, *decl = NULL;

	for (size_t i = 0; i < sizeof headers / sizeof headers[0] && !decl; i++) {
		snprintf(path, sizeof path, "%s/include/%s", ts_stage(), headers[i]);
		if (!(text = ts_read_text(path)))
			tap_bail("%s: cannot read", path);
		for (start = text; (start = strstr(start, first)) != NULL; start++)
			if ((start == text || start[-1] == '\n') && start[len] == '\n')
				break;
		if (start && (end = strstr(start, "\n};")))
			decl = strndup(start, (size_t)(end + 3 - start));
		free(text);
	}
	return decl;
}

/* The struct excerpt b agrees with its header. */
static void check_excerpt(const ts_block *b)
{
	char first[128];
	char *decl, *want, *got;

	snprintf(first, sizeof first, "%.*s", (int)strcspn(b->text, "\n"), b->text);
	decl = header_declaration(first);
	if (!ok(decl, "line %d (%s): '%s' is declared in an installed header", b->line,
		b->heading, first))
		return;
	got = tokens(b->text, strlen(b->text));
	want = tokens(decl, strlen(decl));
	if (!is_str(got, want, "line %d (%s): the excerpt matches the header", b->line,
		    b->heading))
		tap_diag("the header has:\n%s", decl);
	free(got);
	free(want);
	free(decl);
}

/* Compile (and link, for a program) block b, numbered i. */
static void check_compiles(const ts_block *b, int i)
{
	bool program = strstr(b->text, "int main(") != NULL;
	char name[32], out[16384], *src;
	int rc;

	snprintf(name, sizeof name, "block%d.c", i);
	src = ts_write_tmp(name, b->text);
	if (program)
		rc = ts_sh(out, sizeof out,
			   "flags=$(pkg-config --cflags --libs socketserver) &&"
			   " %s %s -o %s.out %s $flags", ts_cc(), WARNINGS, src, src);
	else
		rc = ts_sh(out, sizeof out,
			   "flags=$(pkg-config --cflags socketserver) &&"
			   " %s %s -c -o %s.o %s $flags", ts_cc(), WARNINGS, src, src);
	if (!is_int(rc, 0, "line %d (%s): %s", b->line, b->heading,
		    program ? "the program compiles and links" : "the file compiles"))
		tap_diag("%s", out);
	free(src);
}

int main(void)
{
	ts_block b[TS_MAX_BLOCKS];
	int n;

	tu_init();
	ts_stage();
	n = ts_readme_blocks(b);
	ok(n > 0, "README.md has %d C blocks", n);
	for (int i = 0; i < n; i++) {
		if (!strncmp(b[i].text, "struct ", 7) &&
		    b[i].text[strcspn(b[i].text, "\n") - 1] == '{')
			check_excerpt(&b[i]);
		else
			check_compiles(&b[i], i);
		free(b[i].text);
	}
	return tap_done();
}
