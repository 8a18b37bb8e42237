/*
 * t_stop.c - stopping keeps its promises under every model that can break
 * them: shutdown stops a forking server waiting at max_children; the grace
 * given to ss_server_close_within bounds a sync server's inline request;
 * prefork and prefork+coroutine workers cut their requests at the close's
 * deadline, run finish and report each cut once (with the grace in the
 * field or in the call); a stopping prefork server refuses new clients at
 * once instead of queueing them to be reset; ss_server_cut ends a close's
 * grace period early under every model of the registry that runs requests
 * at once; a prefork parent never dies of SIGPIPE, whatever the program's
 * dispositions; the default handle_error survives a stderr nobody reads.
 */
#include "tap.h"
#include "testutil.h"
#include "faultutil.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Counters shared with worker processes: finish runs, cut reports,
 * other reports, requests seen. */
enum { FINISHED, CUTS, OTHER, SEEN, NCOUNT };
static atomic_int *count;

static int counting_finish(ss_request *r)
{
	atomic_fetch_add(&count[FINISHED], 1);
	return 0;
}

static int echo_counted(ss_request *r)
{
	atomic_fetch_add(&count[SEEN], 1);
	return tu_echo(r);
}

static const ss_handler finishing = { .handle = echo_counted, .finish = counting_finish };

/* handle_error that counts cut reports apart from the rest (any process). */
static void count_error(ss_server *s, ss_request *r, int err)
{
	if (r && err == -ECANCELED && strstr(r->errmsg, "cut"))
		atomic_fetch_add(&count[CUTS], 1);
	else
		atomic_fetch_add(&count[OTHER], 1);
}

static ss_server_ops ops;

static const ss_server_ops *counted(const ss_server_ops *base)
{
	ops = *base;
	ops.handle_error = count_error;
	return &ops;
}

static void zero_counts(void)
{
	for (int i = 0; i < NCOUNT; i++)
		atomic_store(&count[i], 0);
}

/* n clients, each with one echo done: its handler waits for more. */
static void open_idle(const ss_server *s, int *fds, int n)
{
	char buf[8];

	for (int i = 0; i < n; i++) {
		fds[i] = tu_connect(s);
		if (tu_send_all(fds[i], "x", 1) < 0 || tu_read_exact(fds[i], buf, 1, 10) != 1)
			tap_bail("idle client %d got no echo", i);
	}
}

static void close_all(int *fds, int n)
{
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

struct closer {
	ss_server *s;
	double grace;
};

static void *closer_main(void *arg)
{
	struct closer *c = arg;

	ss_server_close_within(c->s, c->grace);
	return NULL;
}

/* ------------------------------------------------------------------ */

static bool accepted3(void *arg)
{
	return fu_accepted() >= 3;
}

/* A forking server with every child busy waits in process_request for
 * one to end; shutdown must stop it there.  The third client's request
 * never runs: it is reported once and its connection closed. */
static void test_forking_full(const ss_server_ops *kind)
{
	char buf[8];
	pthread_t t;
	int fds[3];
	ss_server *s;
	struct stat st;
	char path[256] = "";

	zero_counts();
	fu_install();
	s = tu_server(counted(kind), &ss_forking_mixin, &finishing, NULL);
	s->max_children = 2;
	if (kind->family == AF_UNIX)
		ss_server_address(s, path, sizeof path);
	tu_serve_start(s, &t);
	open_idle(s, fds, 2);
	fds[2] = tu_connect(s);
	ok(tu_wait_until(accepted3, NULL, 10), "forking %s: the third client was accepted",
	   kind->name);
	ss_server_shutdown(s);
	ok(tu_join_within(t, 5, NULL),
	   "forking %s at max_children: shutdown stops serve_forever", kind->name);
	ok(tu_unanswered(tu_read_to_eof(fds[2], buf, sizeof buf, 10)),
	   "forking %s: the request that found no child is closed", kind->name);
	is_int(atomic_load(&count[OTHER]), 1, "forking %s: and reported once", kind->name);
	ss_server_close_within(s, 0.2);
	is_int(atomic_load(&count[CUTS]), 2, "forking %s: the busy children were cut",
	       kind->name);
	if (path[0])
		ok(stat(path, &st) < 0 && errno == ENOENT,
		   "forking unix_stream: the socket file is gone");
	close_all(fds, 3);
	ss_server_free(s);
	fu_reset();
}

/* ss_server_close_within's grace bounds a request running inline in a
 * sync loop, whatever close_grace says. */
static void test_sync_close_within(const ss_server_ops *kind)
{
	struct closer c;
	pthread_t t, ct;
	ss_server *s;
	int fd;

	zero_counts();
	s = tu_server(counted(kind), &ss_sync_mixin, &finishing, NULL);
	tu_serve_start(s, &t);
	open_idle(s, &fd, 1);
	c = (struct closer){ s, 0.3 };
	if (pthread_create(&ct, NULL, closer_main, &c))
		tap_bail("pthread_create");
	ok(tu_join_within(ct, 10, NULL), "sync %s: close_within(0.3) returns with an idle client",
	   kind->name);
	ok(tu_join_within(t, 1, NULL), "sync %s: serve_forever has returned", kind->name);
	is_int(atomic_load(&count[CUTS]), 1, "sync %s: the idle request was cut once", kind->name);
	is_int(atomic_load(&count[FINISHED]), 1, "sync %s: and its finish ran", kind->name);
	close(fd);
	ss_server_free(s);
}

/* Prefork models: every request still open at the close's deadline is
 * cut by its worker, which runs finish and reports it once; the parent
 * gives the workers time to do so.  The grace comes from the call
 * (field_grace false) or from close_grace. */
static void test_prefork_cut(const ss_mixin *m, int workers, int clients, bool field_grace)
{
	int fds[16];
	pthread_t t;
	ss_server *s;

	zero_counts();
	s = tu_server(counted(&ss_tcp_server_ops), m, &finishing, NULL);
	s->workers = workers;
	if (field_grace)
		s->close_grace = 0.3;
	tu_serve_start(s, &t);
	open_idle(s, fds, clients);
	tu_serve_stop(s, &t);
	if (field_grace)
		ss_server_close(s);
	else
		ss_server_close_within(s, 0.3);
	is_int(atomic_load(&count[CUTS]), clients, "%s, grace in %s: every request cut is reported",
	       m->name, field_grace ? "close_grace" : "the call");
	is_int(atomic_load(&count[FINISHED]), clients, "%s, grace in %s: every finish ran",
	       m->name, field_grace ? "close_grace" : "the call");
	is_int(atomic_load(&count[OTHER]), 0, "%s: nothing else was reported", m->name);
	close_all(fds, clients);
	ss_server_free(s);
}

static int refused_port;

static bool refused(void *arg)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(refused_port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), rc;

	rc = connect(fd, (struct sockaddr *)&a, sizeof a);
	if (rc < 0)
		rc = -errno;
	close(fd);
	return rc == -ECONNREFUSED;
}

/* A stopping prefork server closes its listener in every process, also in
 * a worker busy with a request, so new clients are refused at once (not
 * queued and reset when the busy worker ends), long before the grace
 * period is over. */
static void test_prefork_refuses(const ss_mixin *m)
{
	struct closer c;
	pthread_t t, ct;
	ss_server *s;
	int fd;

	zero_counts();
	s = tu_server(counted(&ss_tcp_server_ops), m, &finishing, NULL);
	s->workers = 2;
	s->close_grace = 20;	/* the busy worker sees the stop with a grace */
	refused_port = ss_addr_port(&s->address);
	tu_serve_start(s, &t);
	open_idle(s, &fd, 1);
	tu_serve_stop(s, &t);
	c = (struct closer){ s, 20 };
	if (pthread_create(&ct, NULL, closer_main, &c))
		tap_bail("pthread_create");
	ok(tu_wait_until(refused, NULL, 5),
	   "%s stopping with a busy worker: new clients are refused", m->name);
	ok(!tu_join_within(ct, 0, NULL), "%s: while the busy request still has its grace",
	   m->name);
	ss_server_cut(s);
	ok(tu_join_within(ct, 10, NULL), "%s: ss_server_cut ends the grace period early",
	   m->name);
	is_int(atomic_load(&count[CUTS]), 1, "%s: the request was cut and reported once", m->name);
	close(fd);
	ss_server_free(s);
}

/* ss_server_cut during a close's grace period with two requests in
 * flight (in threads, children, coroutines, workers): the close returns
 * long before the grace is over and every request is reported cut once.
 * 3 checks. */
static void test_cut_now(const ss_mixin *m)
{
	struct closer c;
	pthread_t t, ct;
	ss_server *s;
	int fds[2];

	zero_counts();
	s = tu_server(counted(&ss_tcp_server_ops), m, &finishing, NULL);
	s->workers = 2;
	tu_serve_start(s, &t);
	open_idle(s, fds, 2);
	tu_serve_stop(s, &t);
	c = (struct closer){ s, 60 };
	if (pthread_create(&ct, NULL, closer_main, &c))
		tap_bail("pthread_create");
	ss_server_cut(s);
	ok(tu_join_within(ct, 10, NULL), "%s: ss_server_cut ends a 60 s grace period", m->name);
	is_int(atomic_load(&count[CUTS]), 2, "%s: both requests reported cut", m->name);
	is_int(atomic_load(&count[FINISHED]), 2, "%s: both finishes ran", m->name);
	close_all(fds, 2);
	ss_server_free(s);
}

/* ------------------------------------------------------------------ */
/* SIGPIPE: in a process that did not ignore it                        */
/* ------------------------------------------------------------------ */

/* A handler that stops the whole server once `SEEN` reaches the count in
 * data (from a worker: the parent then stops every worker, some of them
 * gone already). */
static int echo_then_stop(ss_request *r)
{
	int rc = tu_echo(r);

	if (atomic_fetch_add(&count[SEEN], 1) + 1 >= *(int *)r->server->handler->data)
		ss_server_shutdown(r->server);
	return rc;
}

/* In a child with SIGPIPE at its default: serve with model m on kind until
 * a handler stops the server after `stop_after` requests; exit 0.  The
 * parent sends the requests.  Returns the child's exit status. */
static int run_stopping_server(const ss_mixin *m, const ss_server_ops *kind,
			       int max_requests, int stop_after)
{
	static int after;
	static ss_handler h = { .handle = echo_then_stop, .data = &after };
	int ready[2], status, i;
	char addr[SS_ADDRSTRLEN];
	ss_error err;
	ss_server *s;
	pid_t pid;

	after = stop_after;
	zero_counts();
	if (pipe(ready) < 0)
		tap_bail("pipe");
	pid = fork();
	if (pid < 0)
		tap_bail("fork");
	if (pid == 0) {
		signal(SIGPIPE, SIG_DFL);
		close(ready[0]);
		s = ss_server_new(kind, m, "127.0.0.1:0", &h, 0, &err);
		if (!s)
			_exit(3);
		s->workers = 2;
		s->max_requests = max_requests;
		ss_server_address(s, addr, sizeof addr);
		if (write(ready[1], addr, sizeof addr) != sizeof addr)
			_exit(4);
		ss_server_serve_forever(s, 0.5);
		ss_server_close_within(s, 2);
		ss_server_free(s);
		_exit(0);
	}
	close(ready[1]);
	if (read(ready[0], addr, sizeof addr) != sizeof addr)
		tap_bail("no address from the server child");
	close(ready[0]);
	{
		ss_server *probe;
		ss_error e2;
		/* a client needs an ss_server for tu_roundtrip: describe the
		 * child's address with an unbound server of the same kind */
		probe = ss_server_new(kind, NULL, addr, NULL, SS_DEFER_BIND, &e2);
		if (!probe)
			tap_bail("%s", e2.msg);
		for (i = 0; i < stop_after; i++) {
			char out[64];

			if (tu_roundtrip(probe, "ping", 4, out, sizeof out) != 4)
				break;
		}
		ss_server_free(probe);
	}
	status = tu_wait_exit(pid, 20000, NULL);
	return status;
}

static void test_no_sigpipe(void)
{
	const ss_mixin *models[] = { &ss_prefork_mixin, &ss_prefork_coroutine_mixin };
	const ss_server_ops *kinds[] = { &ss_tcp_server_ops, &ss_udp_server_ops };
	int rounds = 6, bad, st = 0;

	for (size_t mi = 0; mi < 2; mi++) {
		for (size_t ki = 0; ki < 2; ki++) {
			bad = 0;
			for (int i = 0; i < rounds; i++)
				if ((st = run_stopping_server(models[mi], kinds[ki], 0, 1)) != 0)
					bad++;
			is_int(bad, 0, "%s %s: a handler's shutdown never kills the parent "
			       "(SIGPIPE at its default; last status %d)",
			       models[mi]->name, kinds[ki]->name, st);
		}
		bad = 0;
		for (int i = 0; i < rounds; i++)
			if ((st = run_stopping_server(models[mi], &ss_tcp_server_ops, 1, 3)) != 0)
				bad++;
		is_int(bad, 0, "%s with max_requests 1: retired workers never kill the parent "
		       "(last status %d)", models[mi]->name, st);
	}
}

/* The default handle_error writing to a stderr nobody reads any more. */
static void test_stderr_epipe(void)
{
	int p[2], status;
	pid_t pid;

	if (pipe(p) < 0)
		tap_bail("pipe");
	pid = fork();
	if (pid == 0) {
		ss_server *s;

		signal(SIGPIPE, SIG_DFL);
		close(p[0]);	/* nobody reads our stderr */
		dup2(p[1], STDERR_FILENO);
		s = ss_tcp_server_new("127.0.0.1:0", NULL, NULL);
		if (!s)
			_exit(3);
		snprintf(s->errmsg, sizeof s->errmsg, "a report nobody reads");
		ss_base_handle_error(s, NULL, -EIO);
		ss_server_free(s);
		_exit(0);
	}
	close(p[0]);
	close(p[1]);
	status = tu_wait_exit(pid, 10000, NULL);
	is_int(status, 0, "handle_error on a stderr pipe nobody reads: no SIGPIPE death");
}

/* A shutdown asked for while no loop runs is kept for the next one, unless
 * cleared. */
static void test_pending_shutdown(void)
{
	ss_server *s = tu_server(&ss_tcp_server_ops, NULL, &tu_echo_handler, NULL);

	ss_server_shutdown(s);
	is_int(ss_server_handle_request(s, 0.05), -ECANCELED,
	       "a shutdown asked for between loops stops the next one");
	is_int(ss_server_handle_request(s, 0.05), -ETIMEDOUT, "and only that one");
	ss_server_shutdown(s);
	ss_server_clear_shutdown(s);
	is_int(ss_server_handle_request(s, 0.05), -ETIMEDOUT,
	       "ss_server_clear_shutdown forgets a pending shutdown");
	ss_server_free(s);
}

int main(void)
{
	const ss_mixin *m;

	tu_init();
	count = tu_shared_counters(NCOUNT);

	test_forking_full(&ss_tcp_server_ops);
	test_forking_full(&ss_unix_stream_server_ops);
	test_sync_close_within(&ss_tcp_server_ops);
	test_sync_close_within(&ss_unix_stream_server_ops);
	test_prefork_cut(&ss_prefork_mixin, 4, 4, false);
	test_prefork_cut(&ss_prefork_mixin, 4, 4, true);
	test_prefork_cut(&ss_prefork_coroutine_mixin, 2, 8, false);
	test_prefork_cut(&ss_prefork_coroutine_mixin, 2, 8, true);
	test_prefork_refuses(&ss_prefork_mixin);
	test_prefork_refuses(&ss_prefork_coroutine_mixin);
	for (size_t i = 0; (m = ss_mixin_at(i)); i++) {
		if (m == &ss_sync_mixin)
			tap_skip(3, "sync runs one request at a time: no two in flight to cut "
				 "(its inline request's cut: test_sync_close_within)");
		else
			test_cut_now(m);
	}
	test_pending_shutdown();
	test_no_sigpipe();
	test_stderr_epipe();
	return tap_done();
}
