/*
 * mixin.c - the registry of concurrency models, so programs can pick one
 * by name ("-m threading").  A new model is one line in the table.
 */
#include <socketserver.h>

#include <string.h>

static const ss_mixin *const mixins[] = {
	&ss_sync_mixin,
	&ss_threading_mixin,
	&ss_forking_mixin,
	&ss_pool_mixin,
	&ss_prefork_mixin,
	&ss_coroutine_mixin,
	&ss_threads_coroutine_mixin,
	&ss_prefork_coroutine_mixin,
};

/* The mixin whose name is name, or NULL (also for a NULL name). */
const ss_mixin *ss_mixin_by_name(const char *name)
{
	size_t i;

	if (!name)
		return NULL;
	for (i = 0; i < sizeof mixins / sizeof mixins[0]; i++)
		if (strcmp(mixins[i]->name, name) == 0)
			return mixins[i];
	return NULL;
}

/* The i-th model in the table (0, 1, ...), or NULL past the end: for
 * listing the models a program can offer. */
const ss_mixin *ss_mixin_at(size_t i)
{
	return i < sizeof mixins / sizeof mixins[0] ? mixins[i] : NULL;
}
