/*
 * t_prefork.c - the prefork model.  serve_forever runs in a thread of
 * this process, so the workers are its children: the tests find them by
 * scanning /proc for processes whose parent is this one.  (The echo, stop
 * and leak checks, close with idle clients among them, are
 * t_echo_matrix's, as for every registered model.)  The default worker
 * count; a worker killed with SIGKILL is respawned and the server keeps serving; max_requests 3
 * recycles the worker (its pid, which the handler sends back, changes);
 * a crashing handler takes down only its worker; ss_server_shutdown from
 * a handler stops the whole server; a failing fork is reported and
 * retried; min_spare starts a worker when the idle one gets busy; a child
 * this program forked itself is never reaped by the
 * server.
 */
#include "tap.h"
#include "testutil.h"
#include "faultutil.h"

#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAXW 64

/* What the parent's handle_error saw (it runs in this process). */
static tu_errors reported = TU_ERRORS_INIT;

static void count_error(ss_server *s, ss_request *r, int err)
{
	if (r)
		return;	/* a request's error, in a worker */
	tu_errors_add(&reported, s->errmsg);
}

static ss_server_ops ops[4];

/* A kind's ops with the counting handle_error. */
static const ss_server_ops *counted(int i, const ss_server_ops *base)
{
	ops[i] = *base;
	ops[i].handle_error = count_error;
	return &ops[i];
}

/* --- this process's live children, from /proc --- */

/* The live children of this process. */
static int children(pid_t *pids, int max)
{
	return tu_children_of(getpid(), pids, max);
}

static bool children_are(void *arg)
{
	pid_t pids[MAXW];

	return children(pids, MAXW) == *(int *)arg;
}

static bool wait_children(int n)
{
	return tu_wait_until(children_are, &n, TU_IO_TIMEOUT);
}

/* --- handlers --- */

/* Read the request to EOF; "crash" kills the worker, "exit" ends it,
 * "stop" calls shutdown; otherwise reply with the worker's pid. */
static int pid_handle(ss_request *r)
{
	char buf[64], out[32];
	struct rlimit no_core = { 0, 0 };
	ssize_t n = ss_read_exact(r, buf, sizeof(buf) - 1);

	if (n < 0)
		return (int)n;
	buf[n] = '\0';
	if (!strcmp(buf, "crash")) {
		setrlimit(RLIMIT_CORE, &no_core);
		signal(SIGSEGV, SIG_DFL);	/* past any sanitizer's handler */
		raise(SIGSEGV);
	}
	if (!strcmp(buf, "exit"))
		_exit(3);
	if (!strcmp(buf, "stop"))
		ss_server_shutdown(r->server);
	snprintf(out, sizeof(out), "%d", (int)getpid());
	return (int)ss_write_all(r, out, strlen(out)) < 0 ? -EIO : 0;
}

static const ss_handler pid_handler = { .handle = pid_handle };

/* Send msg, return the pid the worker answered with (0: no answer). */
static pid_t ask(ss_server *s, const char *msg)
{
	char out[32];
	ssize_t n = tu_roundtrip(s, msg, strlen(msg), out, sizeof(out) - 1);

	if (n <= 0)
		return 0;
	out[n] = '\0';
	return (pid_t)atoi(out);
}

static ss_server *server(int i, const ss_server_ops *kind, const ss_handler *h,
			 int workers, pthread_t *t)
{
	ss_server *s = tu_server(counted(i, kind), &ss_prefork_mixin, h, NULL);

	s->workers = workers;
	tu_serve_start_interval(s, t, 0.05);
	return s;
}

static void stop(ss_server *s, pthread_t *t)
{
	tu_serve_stop(s, t);
	ss_server_close(s);
	ss_server_free(s);
}

/* The CPUs this process may run on, as the library counts them. */
static int allowed_cpus(void)
{
	cpu_set_t set;

	if (sched_getaffinity(0, sizeof set, &set) < 0)
		tap_bail("sched_getaffinity: %s", strerror(errno));
	return CPU_COUNT(&set);
}

/* workers = 0: 4 sync workers per CPU, as the README says. */
static void test_default_workers(void)
{
	int ncpu = allowed_cpus(), want = 4 * ncpu;
	pthread_t t;
	ss_server *s;

	if (want > MAXW) {
		tap_skip(2, "%d workers would exceed this test's table", want);
		return;
	}
	s = server(0, &ss_tcp_server_ops, &tu_echo_handler, 0, &t);
	ok(wait_children(want), "prefork default: %d workers for %d CPUs", want, ncpu);
	stop(s, &t);
	ok(tu_no_children(), "prefork default: every worker reaped");
}

/* Start a TCP server of model m with the default worker count and check
 * how many worker processes it forks. */
static void check_default_count(const ss_mixin *m, int want, const char *why)
{
	ss_server *s = tu_server(counted(0, &ss_tcp_server_ops), m, &tu_echo_handler, NULL);
	pthread_t t;

	tu_serve_start_interval(s, &t, 0.05);
	ok(wait_children(want), "%s: %d worker(s) %s", m->name, want, why);
	ok(tu_echo_once(s, "one cpu"), "%s: serves", m->name);
	stop(s, &t);
	ok(tu_no_children(), "%s: every worker reaped", m->name);
}

/* The default follows the affinity mask, not the host's CPU count: a
 * server started under `taskset -c 1` (or in a one-CPU cpuset) forks
 * workers for the one core it has. */
static void test_default_workers_affinity(void)
{
	cpu_set_t saved, one;
	int cpu;

	if (sched_getaffinity(0, sizeof saved, &saved) < 0)
		tap_bail("sched_getaffinity: %s", strerror(errno));
	for (cpu = 0; !CPU_ISSET(cpu, &saved); cpu++)
		;
	CPU_ZERO(&one);
	CPU_SET(cpu, &one);
	if (sched_setaffinity(0, sizeof one, &one) < 0)
		tap_bail("sched_setaffinity: %s", strerror(errno));
	check_default_count(&ss_prefork_mixin, 4, "on one allowed CPU");
	check_default_count(&ss_prefork_coroutine_mixin, 1, "on one allowed CPU");
	if (sched_setaffinity(0, sizeof saved, &saved) < 0)
		tap_bail("sched_setaffinity: %s", strerror(errno));
}

/* --- respawn, recycling, crashes --- */

static bool replaced(void *arg)
{
	pid_t pids[MAXW], dead = *(pid_t *)arg;
	int n = children(pids, MAXW), i;

	for (i = 0; i < n; i++)
		if (pids[i] == dead)
			return false;
	return n == 2;
}

static void test_kill(void)
{
	pthread_t t;
	ss_server *s = server(0, &ss_tcp_server_ops, &pid_handler, 2, &t);
	pid_t pids[MAXW], victim;
	char last[SS_ERRMSG_MAX];

	ok(wait_children(2), "kill: 2 workers started");
	children(pids, MAXW);
	victim = pids[0];
	kill(victim, SIGKILL);
	ok(tu_wait_until(replaced, &victim, TU_IO_TIMEOUT),
	   "kill -9 of worker %d: the parent started another (2 workers)", (int)victim);
	ok(ask(s, "hello") > 0, "kill: still serving");
	ok(tu_wait_until(tu_errors_any, &reported, TU_IO_TIMEOUT) &&
	   tu_errors_take(&reported, last, sizeof(last)) == 1 && strstr(last, "signal 9"),
	   "kill: reported once: '%s'", last);
	stop(s, &t);
	ok(tu_no_children(), "kill: every worker reaped");
}

static void test_max_requests(void)
{
	pthread_t t;
	ss_server *s = tu_server(counted(0, &ss_tcp_server_ops), &ss_prefork_mixin,
				 &pid_handler, NULL);
	pid_t pid, last = 0;
	int i, changes = 0, answered = 0;

	s->workers = 1;
	s->max_requests = 3;
	tu_serve_start_interval(s, &t, 0.05);
	for (i = 0; i < 10; i++) {
		pid = ask(s, "pid");
		answered += pid > 0;
		changes += last && pid != last;
		last = pid;
	}
	is_int(answered, 10, "max_requests 3: all 10 requests answered");
	ok(changes >= 3, "max_requests 3: the worker changed %d times in 10 requests",
	   changes);
	is_int(tu_errors_take(&reported, NULL, 0), 0,
	       "max_requests: retiring is not an error");
	stop(s, &t);
	ok(tu_no_children(), "max_requests: every worker reaped");
}

static void test_crash(const char *how, const char *want)
{
	pthread_t t;
	ss_server *s = server(0, &ss_tcp_server_ops, &pid_handler, 2, &t);
	char last[SS_ERRMSG_MAX];
	pid_t before[MAXW], after[MAXW];
	int i, n, kept = 0;

	ok(wait_children(2), "%s: 2 workers", how);
	children(before, MAXW);
	ok(ask(s, how) == 0, "%s: the crashing request gets no answer", how);
	ok(tu_wait_until(tu_errors_any, &reported, TU_IO_TIMEOUT) &&
	   tu_errors_take(&reported, last, sizeof(last)) == 1 && strstr(last, want),
	   "%s: the parent reported it: '%s'", how, last);
	ok(wait_children(2), "%s: 2 workers again", how);
	n = children(after, MAXW);
	for (i = 0; i < n; i++)
		kept += after[i] == before[0] || after[i] == before[1];
	is_int(kept, 1, "%s: only its worker was taken down", how);
	ok(ask(s, "next") > 0, "%s: the next client is served", how);
	stop(s, &t);
	ok(tu_no_children(), "%s: every worker reaped", how);
}

/* A handler calling ss_server_shutdown stops the whole server. */
static void test_handler_shutdown(void)
{
	pthread_t t;
	ss_server *s = server(0, &ss_tcp_server_ops, &pid_handler, 2, &t);
	void *ret;

	ok(ask(s, "stop") > 0, "handler shutdown: the request is answered");
	ok(tu_join_within(t, TU_IO_TIMEOUT, &ret), "handler shutdown: serve_forever returned");
	ss_server_close(s);
	ss_server_free(s);
	ok(tu_no_children(), "handler shutdown: every worker reaped");
}

static void test_fork_failure(void)
{
	pthread_t t;
	ss_server *s;
	char last[SS_ERRMSG_MAX];

	fu_install();
	fu_fail_next(FU_FORK, -1, EAGAIN);
	s = server(0, &ss_tcp_server_ops, &pid_handler, 2, &t);
	ok(tu_wait_until(tu_errors_any, &reported, TU_IO_TIMEOUT), "fork fails: reported");
	is_int(tu_errors_take(&reported, last, sizeof(last)), 1,
	       "fork fails: once per episode");
	ok(strstr(last, "prefork: fork worker: Resource temporarily unavailable") != NULL,
	   "fork fails: message '%s'", last);
	fu_fail_next(FU_FORK, 0, 0);
	ok(wait_children(2), "fork works again: 2 workers");
	ok(ask(s, "hello") > 0, "fork works again: served");
	stop(s, &t);
	fu_reset();
}

/* min_spare 1: one idle worker at start; when it gets a client another
 * starts. */
static void test_spare(void)
{
	pthread_t t;
	ss_server *s = tu_server(counted(0, &ss_tcp_server_ops), &ss_prefork_mixin,
				 &tu_echo_handler, NULL);
	int fd;

	s->workers = 4;
	s->min_spare = 1;
	s->max_spare = 2;
	tu_serve_start_interval(s, &t, 0.05);
	ok(wait_children(1), "min_spare 1: one worker at start");
	fd = tu_connect(s);
	ok(tu_wait_active(s, 1, TU_IO_TIMEOUT), "min_spare: the worker is busy");
	ok(wait_children(2), "min_spare: a second worker started");
	close(fd);
	stop(s, &t);
	ok(tu_no_children(), "min_spare: every worker reaped");
}

static void test_foreign_child(void)
{
	pthread_t t;
	ss_server *s = server(0, &ss_tcp_server_ops, &pid_handler, 2, &t);
	pid_t mine;
	int good = 0, i;

	mine = fork();
	if (mine < 0)
		tap_bail("fork: %s", strerror(errno));
	if (mine == 0)
		_exit(42);
	for (i = 0; i < 5; i++)
		good += ask(s, "hi") > 0;
	is_int(good, 5, "foreign child: requests served");
	stop(s, &t);
	is_int(tu_exit_status(mine), 42, "foreign child: still ours to reap, status 42");
	ok(tu_no_children(), "foreign child: no children left");
}

int main(void)
{
	double t0 = tu_now();

	tu_init();
	test_default_workers();
	test_default_workers_affinity();
	test_kill();
	test_max_requests();
	test_crash("crash", "signal 11");
	test_crash("exit", "status 3");
	test_handler_shutdown();
	test_fork_failure();
	test_spare();
	test_foreign_child();
	tap_diag("took %.0f ms", (tu_now() - t0) * 1000);
	return tap_done();
}
