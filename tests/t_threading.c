/*
 * t_threading.c - the threading model (its echo, stop and leak checks are
 * t_echo_matrix's, as for every registered model): 20,000 requests
 * (100,000 with SS_SOAK=1) leave no threads, descriptors or memory growth
 * behind; daemon_threads and block_on_close false close promptly;
 * thread_stack_size is honoured.
 */
#include "tap.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static atomic_int stack_kb;	/* a handler thread's stack size, KiB */

/* This process's resident memory, KiB (0 if unknown). */
static long rss_kb(void)
{
	char line[128];
	long kb = 0;
	FILE *f = fopen("/proc/self/status", "r");

	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

static bool fds_back_to(void *arg)
{
	return tu_count_fds() == *(int *)arg;
}

/*
 * Many sequential requests, each on a thread of its own, leave nothing
 * behind: no thread, no descriptor, no memory growth past the warm-up.
 * 20,000 requests here (a leak of 200 bytes each would show); SS_SOAK=1
 * in the environment makes it the 100,000.
 */
static void test_many_threads(void)
{
	ss_server *s = tu_server(&ss_tcp_server_ops, &ss_threading_mixin,
				 &tu_echo_handler, NULL);
	int i, good = 0, base, fds = 0, total = getenv("SS_SOAK") ? 100000 : 20000;
	int warm = 2000;
	long rss0 = 0, rss1;
	bool reaped;
	pthread_t t;
	double t0;

	tu_serve_start(s, &t);
	base = tu_count_threads();
	t0 = tu_now();
	for (i = 0; i < total; i++) {
		if (i == warm) {
			tu_wait_active(s, 0, 5.0);	/* its fds closed */
			fds = tu_count_fds();
			rss0 = rss_kb();
		}
		good += tu_echo_once(s, "sequential");
	}
	tap_diag("%d threaded requests: %.0f ms", total, (tu_now() - t0) * 1000);
	is_int(good, total, "threading: %d sequential requests echoed", total);
	reaped = tu_wait_threads_at_most(base + 2, 5.0);
	ok(reaped, "threading: handler threads reaped (%d threads, baseline %d)",
	   tu_count_threads(), base);
	ok(tu_wait_active(s, 0, 5.0), "threading: active_count back to 0");
	ok(tu_wait_until(fds_back_to, &fds, 5.0),
	   "threading: no descriptor left after %d requests (%d open, %d at warm-up)",
	   total, tu_count_fds(), fds);
	rss1 = rss_kb();
	tap_diag("RSS after %d requests: %ld KiB; after %d: %ld KiB", warm, rss0, total, rss1);
	if (TU_SANITIZED)
		tap_skip(1, "a sanitizer's own bookkeeping grows with every thread");
	else
		ok(rss0 > 0 && rss1 - rss0 < 4096,
		   "threading: RSS grew %ld KiB over %d requests (< 4 MiB)", rss1 - rss0,
		   total - warm);
	tu_serve_stop(s, &t);
	ss_server_free(s);
}

static int stack_probe(ss_request *r)
{
	pthread_attr_t a;
	size_t size = 0;

	if (pthread_getattr_np(pthread_self(), &a) == 0) {
		pthread_attr_getstacksize(&a, &size);
		pthread_attr_destroy(&a);
	}
	atomic_store(&stack_kb, (int)(size / 1024));
	return tu_echo(r);
}

static const ss_handler stack_handler = { .handle = stack_probe };

static void test_stack_size(void)
{
	ss_server *s = tu_server(&ss_tcp_server_ops, &ss_threading_mixin,
				 &stack_handler, NULL);
	pthread_t t;
	int kb;

	s->thread_stack_size = 512 * 1024;
	tu_serve_start(s, &t);
	ok(tu_echo_once(s, "stack"), "stack: request served");
	tu_serve_stop(s, &t);
	ss_server_close(s);
	kb = atomic_load(&stack_kb);
	tap_diag("handler thread stack: %d KiB (asked for 512)", kb);
	ok(kb >= 512 && kb <= 8 * 512,
	   "thread_stack_size 512 KiB honoured (%d KiB in [512, 4096])", kb);
	ss_server_free(s);
}

int main(void)
{
	double t0 = tu_now();

	tu_init();
	test_many_threads();
	tu_check_prompt_close(&ss_threading_mixin, true, "daemon_threads");
	tu_check_prompt_close(&ss_threading_mixin, false, "block_on_close false");
	test_stack_size();
	tap_diag("took %.0f ms", (tu_now() - t0) * 1000);
	return tap_done();
}
