/*
 * t_symbols.c - the shared library exports its public API and nothing
 * else: every name `nm -D --defined-only` lists is declared with SS_EXTERN
 * in an installed header (so no internal name, such as the writable
 * syscall table, can leak again), and every name declared so is exported.
 * The headers are read from the source tree next to this build directory.
 */
#include "tap.h"
#include "testutil.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAXNAMES 1024

struct names {
	char *v[MAXNAMES];
	int n;
};

static void add(struct names *s, const char *name, size_t len)
{
	for (int i = 0; i < s->n; i++)
		if (strlen(s->v[i]) == len && !strncmp(s->v[i], name, len))
			return;
	if (s->n == MAXNAMES)
		tap_bail("more than %d names", MAXNAMES);
	s->v[s->n++] = strndup(name, len);
}

static bool has(const struct names *s, const char *name)
{
	for (int i = 0; i < s->n; i++)
		if (!strcmp(s->v[i], name))
			return true;
	return false;
}

/* The name an SS_EXTERN declaration declares: the identifier before its
 * first '(' (a function), else its last identifier (a variable). */
static void declared_name(const char *decl, struct names *out)
{
	const char *p = strchr(decl, '('), *end;

	if (!p)
		p = decl + strcspn(decl, ";");
	end = p;
	while (end > decl && isspace((unsigned char)end[-1]))
		end--;
	p = end;
	while (p > decl && (isalnum((unsigned char)p[-1]) || p[-1] == '_'))
		p--;
	if (end > p)
		add(out, p, (size_t)(end - p));
}

/* Every SS_EXTERN declaration in the header at path. */
static void read_header(const char *path, struct names *out)
{
	char line[1024], decl[4096];
	FILE *f = fopen(path, "r");

	if (!f)
		tap_bail("cannot open %s", path);
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "SS_EXTERN ", 10))
			continue;
		snprintf(decl, sizeof decl, "%s", line + 10);
		while (!strchr(decl, ';') && fgets(line, sizeof line, f))
			strncat(decl, line, sizeof decl - strlen(decl) - 1);
		declared_name(decl, out);
	}
	fclose(f);
}

int main(void)
{
	static const char *const headers[] = {
		"socketserver/include/socketserver.h",
		"socketserver/include/socketserver/selector.h",
		"socketserver/include/socketserver/tls.h",
	};
	char exe[PATH_MAX], root[PATH_MAX], build[PATH_MAX], path[PATH_MAX + 64];
	char cmd[PATH_MAX + 64], line[512], type, name[256];
	struct names declared = { .n = 0 }, exported = { .n = 0 };
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	int leaks = 0, missing = 0;
	FILE *p;

	if (n < 0)
		tap_bail("readlink /proc/self/exe");
	exe[n] = '\0';
	/* BUILD/tests/t_symbols: BUILD's parent is the source tree */
	snprintf(build, sizeof build, "%s", exe);
	*strrchr(build, '/') = '\0';
	*strrchr(build, '/') = '\0';
	snprintf(root, sizeof root, "%s", build);
	*strrchr(root, '/') = '\0';

	for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", root, headers[i]);
		read_header(path, &declared);
	}
	ok(declared.n > 50, "the headers declare %d exported names", declared.n);

	snprintf(cmd, sizeof cmd, "nm -D --defined-only %s/socketserver/libsocketserver.so", build);
	if (!(p = popen(cmd, "r")))
		tap_bail("popen %s", cmd);
	while (fgets(line, sizeof line, p))
		if (sscanf(line, "%*s %c %255s", &type, name) == 2 &&
		    strncmp(name, "__odr_asan.", 11))	/* ASan's, one per exported variable */
			add(&exported, name, strlen(name));
	ok(pclose(p) == 0, "nm -D lists the shared library's symbols");
	ok(exported.n > 50, "the shared library exports %d names", exported.n);

	for (int i = 0; i < exported.n; i++)
		if (!has(&declared, exported.v[i])) {
			tap_diag("exported but not in a header: %s", exported.v[i]);
			leaks++;
		}
	is_int(leaks, 0, "every exported name is declared with SS_EXTERN in a header");
	for (int i = 0; i < declared.n; i++)
		if (!has(&exported, declared.v[i])) {
			tap_diag("declared but not exported: %s", declared.v[i]);
			missing++;
		}
	is_int(missing, 0, "every SS_EXTERN name is exported");
	ok(!has(&exported, "ss__sys"), "the syscall table is not exported");
	for (int i = 0; i < declared.n; i++)
		free(declared.v[i]);
	for (int i = 0; i < exported.n; i++)
		free(exported.v[i]);
	return tap_done();
}
