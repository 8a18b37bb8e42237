/*
 * loadgen.c - the benchmark's load generator: epoll, non-blocking sockets,
 * one thread per -t, no allocation per request, loopback only.
 *
 *   loadgen -m pingpong|connect|udp|idle [-c CONNS] [-s SIZE] [-d SECS]
 *           [-i IDLE] [-t THREADS] [-T SETUP_SECS] [-p SERVER_PID] ADDRESS
 *
 * pingpong  CONNS persistent TCP connections; each sends SIZE bytes and
 *           waits for the whole echo before the next message.
 * connect   CONNS connects in flight: connect, send SIZE bytes, read the
 *           echo, close, again.  Latency includes the connect.
 * udp       CONNS UDP sockets doing ping-pong; a reply missing after
 *           200 ms is counted as an error and the datagram sent again.
 * idle      IDLE connections are opened first (each echoes one message, so
 *           the server really holds it), then pingpong runs on CONNS
 *           others; idle connections the server drops count as errors.
 *
 * Prints one line: mode=... conns=... reqs=... rps=... p50_us=... p99_us=...
 * p999_us=... max_us=... errors=... and, with -p, the peak memory of the
 * server's process tree sampled every 200 ms (RSS and VSZ summed over the
 * process and its descendants).  Exit status 0, 1 if no request at all was
 * answered, 2 on bad usage.  Every run is bounded: connects get 3 s
 * and 3 tries, the setup at most SETUP_SECS (30), the whole program
 * SETUP_SECS + SECS + 30 s.
 */
#include "netutil.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 512
#define RBUF_SIZE (64 * 1024)
#define MAX_SIZE (1 << 20)
#define MAX_TRIES 3			/* connects per connection (pingpong)
					   or in a row per slot (connect) */
#define MAX_BUSY 256			/* setup: connections being opened at
					   once per thread */
#define CONNECT_TIMEOUT_NS 3000000000ull
#define UDP_TIMEOUT_NS 200000000ull
#define DRAIN_NS 1000000000ull		/* after the window, replies in flight
					   get this long; then they count as
					   errors (stalled) */
#define SCAN_NS 20000000ull		/* timeouts are checked this often */
#define SRC_ADDRS 16			/* connect mode: source addresses
					   127.0.0.2.. to spread the ports */

/* ------------------------------------------------------------------ */
/* Latency histogram: log-linear buckets, 64 per power of two (~1.6%)   */
/* ------------------------------------------------------------------ */

#define SUB_BITS 6
#define SUB (1u << SUB_BITS)
#define NBUCKETS ((64 - SUB_BITS + 1) * SUB)

struct hist {
	uint64_t count[NBUCKETS];
	uint64_t n, max;
};

/* The bucket of a value in ns. */
static unsigned bucket_of(uint64_t v)
{
	unsigned k;

	if (v < SUB)
		return (unsigned)v;
	k = 63u - (unsigned)__builtin_clzll(v);	/* >= SUB_BITS */
	return (k - SUB_BITS + 1) * SUB + (unsigned)((v >> (k - SUB_BITS)) & (SUB - 1));
}

/* The middle of bucket b, in ns. */
static double bucket_mid(unsigned b)
{
	unsigned k, sub;

	if (b < SUB)
		return b;
	k = b / SUB + SUB_BITS - 1;
	sub = b % SUB;
	return (double)((uint64_t)(SUB + sub) << (k - SUB_BITS)) +
	       (double)(1ull << (k - SUB_BITS)) / 2;
}

static void hist_add(struct hist *h, uint64_t v)
{
	h->count[bucket_of(v)]++;
	h->n++;
	if (v > h->max)
		h->max = v;
}

static void hist_merge(struct hist *into, const struct hist *h)
{
	unsigned i;

	for (i = 0; i < NBUCKETS; i++)
		into->count[i] += h->count[i];
	into->n += h->n;
	if (h->max > into->max)
		into->max = h->max;
}

/* The value at quantile q (0..1) in microseconds; 0 if empty. */
static double hist_quantile_us(const struct hist *h, double q)
{
	uint64_t want, seen = 0;
	unsigned i;

	if (!h->n)
		return 0;
	want = (uint64_t)(q * (double)h->n);
	if (want < 1)
		want = 1;
	for (i = 0; i < NBUCKETS; i++) {
		seen += h->count[i];
		if (seen >= want)
			break;
	}
	return bucket_mid(i) / 1000.0;
}

/* ------------------------------------------------------------------ */
/* Configuration and per-thread state                                  */
/* ------------------------------------------------------------------ */

enum mode { M_PINGPONG, M_CONNECT, M_UDP, M_IDLE };
static const char *const mode_names[] = { "pingpong", "connect", "udp", "idle" };

enum cstate { C_NEW, C_CONNECTING, C_SENDING, C_RECEIVING, C_READY, C_DEAD };

/* One connection (or UDP socket, or connect slot). */
struct conn {
	int fd;
	uint8_t state;
	uint8_t tries;		/* failed connects in a row */
	uint8_t wantout;	/* EPOLLOUT is registered */
	uint32_t sent, got;	/* bytes of the current message */
	uint64_t t0;		/* request (connect mode: connect) start, ns */
};

/* A load thread: its connections, epoll set and counters. */
struct worker {
	pthread_t tid;
	int ep;
	struct conn *conns;	/* [0, nactive) active, then the idle ones */
	int nactive, total;
	int next;		/* setup: next connection to open */
	int busy;		/* setup: being opened now */
	int ready, dead;
	unsigned src;		/* connect mode: next source address */
	bool running;		/* measuring window open */
	uint64_t reqs, errors, stalled, idle_lost;
	uint64_t ended;		/* when the loop stopped, ns */
	struct hist hist;
	unsigned char rbuf[RBUF_SIZE];
};

static struct {
	enum mode mode;
	int conns, idle, threads;
	uint32_t size;
	double secs, setup_secs;
	pid_t server;
	struct bn_addr addr;
} cfg = { M_PINGPONG, 50, 0, 1, 64, 5.0, 30.0, 0, { { 0 }, 0 } };

static unsigned char *sendbuf;		/* the message, SIZE bytes */
static pthread_barrier_t barrier;
static _Atomic uint64_t run_start, run_end;	/* ns, set between barriers */
static atomic_int workers_done;

/* Monotonic time in ns. */
static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------ */
/* One connection's state machine                                      */
/* ------------------------------------------------------------------ */

static void begin_request(struct worker *w, struct conn *c, uint64_t now);
static void start_connect(struct worker *w, struct conn *c, uint64_t now);

/* Change the events fd is registered for. */
static void watch(struct worker *w, struct conn *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.u32 = (uint32_t)(c - w->conns) };

	epoll_ctl(w->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Close c's socket (it leaves the epoll set with it). */
static void close_conn(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/*
 * Something went wrong on c: count the error, then connect again unless
 * it failed MAX_TRIES times in a row (or the connect mode's window is
 * over), in which case c is dead.
 */
static void fail(struct worker *w, struct conn *c, uint64_t now)
{
	bool was_busy = c->state != C_READY;

	w->errors++;
	close_conn(c);
	if (c - w->conns >= w->nactive && c->state == C_READY)
		w->idle_lost++;
	if (c->state == C_READY)
		w->ready--;
	if (++c->tries >= MAX_TRIES || (w->running && now >= run_end)) {
		c->state = C_DEAD;
		w->dead++;
		if (!w->running && was_busy)
			w->busy--;
		return;
	}
	if (!was_busy && !w->running)
		w->busy++;
	start_connect(w, c, now);
}

/* c finished an exchange: record it, then start the next. */
static void complete(struct worker *w, struct conn *c, uint64_t now)
{
	c->tries = 0;
	if (!w->running || c - w->conns >= w->nactive) {
		/* Setup: the connection is open and echoes; park it. */
		c->state = C_READY;
		w->ready++;
		w->busy--;
		return;
	}
	if (now > run_end) {
		/* Drain: no new request; the connection closes cleanly. */
		if (cfg.mode == M_CONNECT)
			close_conn(c);
		c->state = C_READY;
		return;
	}
	hist_add(&w->hist, now - c->t0);
	w->reqs++;
	if (cfg.mode == M_CONNECT) {
		close_conn(c);
		start_connect(w, c, now);
	} else {
		begin_request(w, c, now);
	}
}

/* Send what is left of the message; registers EPOLLOUT if it blocks. */
static void try_send(struct worker *w, struct conn *c, uint64_t now)
{
	ssize_t n;

	while (c->sent < cfg.size) {
		n = send(c->fd, sendbuf + c->sent, cfg.size - c->sent, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN && cfg.mode != M_UDP) {
				if (!c->wantout)
					watch(w, c, EPOLLIN | EPOLLOUT);
				c->wantout = 1;
				return;
			}
			return fail(w, c, now);
		}
		c->sent += (uint32_t)n;
	}
	if (c->wantout)
		watch(w, c, EPOLLIN);
	c->wantout = 0;
	c->state = C_RECEIVING;
}

/* Start an exchange on an open connection. */
static void begin_request(struct worker *w, struct conn *c, uint64_t now)
{
	if (cfg.mode != M_CONNECT)
		c->t0 = now;
	c->sent = c->got = 0;
	c->state = C_SENDING;
	try_send(w, c, now);
}

/* Read what has arrived and check it against what was sent. */
static void on_readable(struct worker *w, struct conn *c, uint64_t now)
{
	ssize_t n;

	for (;;) {
		n = recv(c->fd, w->rbuf, sizeof w->rbuf, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0 || c->state == C_READY || c->got + (uint32_t)n > c->sent ||
		    (cfg.mode == M_UDP && (uint32_t)n != cfg.size) ||
		    memcmp(w->rbuf, sendbuf + c->got, (size_t)n) != 0)
			return fail(w, c, now);
		c->got += (uint32_t)n;
		if (c->got == cfg.size)
			return complete(w, c, now);
		if (cfg.mode == M_UDP || (size_t)n < sizeof w->rbuf)
			return;
	}
}

/* A connect finished (EPOLLOUT while connecting): check how. */
static void on_connected(struct worker *w, struct conn *c, uint64_t now)
{
	int err = 0;
	socklen_t len = sizeof err;

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err)
		return fail(w, c, now);
	watch(w, c, EPOLLIN);
	begin_request(w, c, now);
}

/* Connect mode: bind to the next of SRC_ADDRS loopback source addresses,
 * the port chosen at connect, so TIME_WAIT does not use up the ports. */
static void bind_source(struct worker *w, int fd)
{
	struct sockaddr_in src = { .sin_family = AF_INET };
	int one = 1;

	src.sin_addr.s_addr = htonl(0x7f000002u + w->src++ % SRC_ADDRS);
	setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
	bind(fd, (struct sockaddr *)&src, sizeof src);
}

/* Open c's socket and connect it to the server. */
static void start_connect(struct worker *w, struct conn *c, uint64_t now)
{
	bool udp = cfg.mode == M_UDP;
	struct epoll_event ev = { .events = EPOLLOUT, .data.u32 = (uint32_t)(c - w->conns) };
	int one = 1;

	c->fd = socket(cfg.addr.ss.ss_family,
		       (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		goto out_fail;
	c->t0 = now;
	c->wantout = 0;
	c->state = C_CONNECTING;
	if (!udp)
		setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (cfg.mode == M_CONNECT && cfg.addr.ss.ss_family == AF_INET)
		bind_source(w, c->fd);
	if (epoll_ctl(w->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
		goto out_fail;
	if (connect(c->fd, (struct sockaddr *)&cfg.addr.ss, cfg.addr.len) == 0)
		return on_connected(w, c, now);
	if (errno == EINPROGRESS)
		return;
out_fail:
	c->state = C_CONNECTING;
	fail(w, c, now);
}

/* Dispatch one epoll event. */
static void on_event(struct worker *w, struct conn *c, uint32_t events, uint64_t now)
{
	if (c->state == C_CONNECTING) {
		if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			on_connected(w, c, now);
		return;
	}
	if (c->state == C_DEAD || c->fd < 0)
		return;
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		on_readable(w, c, now);
	if (c->fd >= 0 && c->state == C_SENDING && events & EPOLLOUT)
		try_send(w, c, now);
}

/* Time out connects that take too long and UDP replies that got lost. */
static void scan_timeouts(struct worker *w, int upto, uint64_t now)
{
	struct conn *c;
	int i;

	for (i = 0; i < upto; i++) {
		c = &w->conns[i];
		if (c->state == C_CONNECTING && now - c->t0 > CONNECT_TIMEOUT_NS)
			fail(w, c, now);
		else if (cfg.mode == M_UDP && c->state == C_RECEIVING &&
			 now - c->t0 > UDP_TIMEOUT_NS) {
			w->errors++;
			if (++c->tries >= 10 * MAX_TRIES) {
				close_conn(c);
				c->state = C_DEAD;
				w->dead++;
			} else {
				begin_request(w, c, now);
			}
		}
	}
}

/* ------------------------------------------------------------------ */
/* The load thread                                                     */
/* ------------------------------------------------------------------ */

/* Wait for events until deadline (or at most SCAN_NS) and handle them. */
static void poll_once(struct worker *w, uint64_t deadline)
{
	struct epoll_event evs[MAX_EVENTS];
	uint64_t now = now_ns();
	int n, i, ms;

	ms = deadline > now ? (int)((deadline - now + 999999) / 1000000) : 0;
	if (ms > (int)(SCAN_NS / 1000000))
		ms = (int)(SCAN_NS / 1000000);
	n = epoll_wait(w->ep, evs, MAX_EVENTS, ms);
	now = now_ns();
	for (i = 0; i < n; i++)
		on_event(w, &w->conns[evs[i].data.u32], evs[i].events, now);
}

/*
 * Setup: open the idle connections, then the active ones, at most
 * MAX_BUSY at a time, each echoing one message.  Gives up on those not
 * ready by the setup deadline.
 */
static void setup(struct worker *w)
{
	uint64_t deadline = now_ns() + (uint64_t)(cfg.setup_secs * 1e9), last_scan = 0, now;
	int nidle = w->total - w->nactive, i, k;
	struct conn *c;

	if (cfg.mode == M_CONNECT)
		return;
	while (w->ready + w->dead < w->total && (now = now_ns()) < deadline) {
		while (w->busy < MAX_BUSY && w->next < w->total) {
			k = w->next++;
			w->busy++;
			start_connect(w, &w->conns[k < nidle ? w->nactive + k : k - nidle],
				      now);
		}
		if (now - last_scan >= SCAN_NS) {
			scan_timeouts(w, w->total, now);
			last_scan = now;
		}
		poll_once(w, deadline);
	}
	for (i = 0; i < w->total; i++) {
		c = &w->conns[i];
		if (c->state != C_READY && c->state != C_DEAD) {
			w->errors++;
			close_conn(c);
			c->state = C_DEAD;
			w->dead++;
		}
	}
}

/* True if an active connection waits for a connect or an echo. */
static bool in_flight(const struct worker *w)
{
	int i;

	for (i = 0; i < w->nactive; i++)
		if (w->conns[i].state == C_CONNECTING || w->conns[i].state == C_SENDING ||
		    w->conns[i].state == C_RECEIVING)
			return true;
	return false;
}

/* The measured window: every active connection runs until run_end. */
static void run(struct worker *w)
{
	uint64_t now = now_ns(), last_scan = now;
	int i;

	w->running = true;
	for (i = 0; i < w->nactive; i++) {
		struct conn *c = &w->conns[i];

		if (cfg.mode == M_CONNECT)
			start_connect(w, c, now);
		else if (c->state == C_READY)
			begin_request(w, c, now);
	}
	while ((now = now_ns()) < run_end && w->dead < w->nactive) {
		if (now - last_scan >= SCAN_NS) {
			scan_timeouts(w, w->nactive, now);
			last_scan = now;
		}
		poll_once(w, run_end);
	}
	w->ended = now < run_end ? now : run_end;
	while (in_flight(w) && (now = now_ns()) < run_end + DRAIN_NS) {
		scan_timeouts(w, w->nactive, now);
		poll_once(w, run_end + DRAIN_NS);
	}
}

/* After the window and the drain: count the requests still in flight
 * (stalled) and the idle connections lost, close everything. */
static void finish(struct worker *w)
{
	struct conn *c;
	char b;
	int i;

	for (i = 0; i < w->total; i++) {
		c = &w->conns[i];
		if (c->state == C_SENDING || c->state == C_RECEIVING)
			w->stalled++;
		if (i >= w->nactive && c->state == C_READY &&
		    recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
			w->idle_lost++;
		close_conn(c);
	}
	w->errors += w->stalled;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	setup(w);
	pthread_barrier_wait(&barrier);		/* all set up */
	pthread_barrier_wait(&barrier);		/* run_start/run_end set */
	run(w);
	finish(w);
	atomic_fetch_add(&workers_done, 1);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* The server's memory: its process tree, sampled from /proc           */
/* ------------------------------------------------------------------ */

struct mem { long rss_kb, vsz_kb; int procs; };

/* The parent pid of pid from /proc/PID/stat; -1 if gone. */
static pid_t parent_of(pid_t pid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd, ppid;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %d", &ppid) != 1)
		return -1;
	return (pid_t)ppid;
}

/* Add pid's size and resident pages from /proc/PID/statm to *m. */
static void add_statm(pid_t pid, struct mem *m)
{
	char path[64];
	long size, rss, page = sysconf(_SC_PAGESIZE) / 1024;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/statm", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return;
	if (fscanf(f, "%ld %ld", &size, &rss) == 2) {
		m->vsz_kb += size * page;
		m->rss_kb += rss * page;
		m->procs++;
	}
	fclose(f);
}

/* The memory of root and all its descendant processes, now. */
static struct mem tree_mem(pid_t root)
{
	static pid_t pids[65536], ppids[65536];
	struct mem m = { 0, 0, 0 };
	struct dirent *d;
	int n = 0, i, j, changed;
	char *in_tree;
	DIR *dir = opendir("/proc");

	if (!dir)
		return m;
	while ((d = readdir(dir)) && n < 65536) {
		if (!isdigit((unsigned char)d->d_name[0]))
			continue;
		pids[n] = (pid_t)atoi(d->d_name);
		ppids[n] = parent_of(pids[n]);
		n++;
	}
	closedir(dir);
	in_tree = calloc((size_t)n + 1, 1);
	if (!in_tree)
		return m;
	for (i = 0; i < n; i++)
		in_tree[i] = pids[i] == root;
	do {	/* mark children of marked processes until nothing changes */
		changed = 0;
		for (i = 0; i < n; i++)
			for (j = 0; !in_tree[i] && j < n; j++)
				if (in_tree[j] && ppids[i] == pids[j])
					in_tree[i] = changed = 1;
	} while (changed);
	for (i = 0; i < n; i++)
		if (in_tree[i])
			add_statm(pids[i], &m);
	free(in_tree);
	return m;
}

/* Keep the largest figures of sample in *peak. */
static void mem_peak(struct mem *peak, struct mem sample)
{
	if (sample.rss_kb > peak->rss_kb)
		peak->rss_kb = sample.rss_kb;
	if (sample.vsz_kb > peak->vsz_kb)
		peak->vsz_kb = sample.vsz_kb;
	if (sample.procs > peak->procs)
		peak->procs = sample.procs;
}

/* ------------------------------------------------------------------ */
/* Command line, start, report                                         */
/* ------------------------------------------------------------------ */

static void __attribute__((noreturn)) usage(int status)
{
	fprintf(status ? stderr : stdout,
		"usage: loadgen -m pingpong|connect|udp|idle [-c CONNS] [-s SIZE] [-d SECS]\n"
		"               [-i IDLE] [-t THREADS] [-T SETUP_SECS] [-p SERVER_PID] ADDRESS\n"
		"  -m MODE     the load (see the top of loadgen.c); default pingpong\n"
		"  -c CONNS    active connections / sockets / connects in flight (50)\n"
		"  -s SIZE     message bytes, 1..%d (64)\n"
		"  -d SECS     measured seconds, up to 600 (5)\n"
		"  -i IDLE     idle mode: connections held open without traffic (10000)\n"
		"  -t THREADS  load threads, each with its own epoll (1)\n"
		"  -T SECS     connections not set up by then are dropped as errors (30)\n"
		"  -p PID      sample the memory of this server's process tree\n"
		"  ADDRESS     127.0.0.1:PORT or [::1]:PORT (loopback only)\n",
		MAX_SIZE);
	exit(status);
}

/* Parse an integer option in [lo, hi] or exit with the usage. */
static long int_arg(const char *text, long lo, long hi, char opt)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(text, &end, 10);
	if (errno || end == text || *end || v < lo || v > hi) {
		fprintf(stderr, "loadgen: -%c wants %ld..%ld, not '%s'\n", opt, lo, hi, text);
		usage(2);
	}
	return v;
}

static void parse_args(int argc, char **argv)
{
	char err[256], *end;
	bool idle_given = false;
	int c, m;

	while ((c = getopt(argc, argv, "m:c:s:d:i:t:T:p:h")) != -1) {
		switch (c) {
		case 'm':
			for (m = 0; m < 4 && strcmp(optarg, mode_names[m]); m++)
				;
			if (m == 4) {
				fprintf(stderr, "loadgen: unknown mode '%s'\n", optarg);
				usage(2);
			}
			cfg.mode = (enum mode)m;
			break;
		case 'c': cfg.conns = (int)int_arg(optarg, 1, 100000, 'c'); break;
		case 's': cfg.size = (uint32_t)int_arg(optarg, 1, MAX_SIZE, 's'); break;
		case 'i': cfg.idle = (int)int_arg(optarg, 0, 100000, 'i'); idle_given = true; break;
		case 't': cfg.threads = (int)int_arg(optarg, 1, 64, 't'); break;
		case 'p': cfg.server = (pid_t)int_arg(optarg, 1, 1 << 30, 'p'); break;
		case 'd':
			cfg.secs = strtod(optarg, &end);
			if (end == optarg || *end || !(cfg.secs > 0 && cfg.secs <= 600)) {
				fprintf(stderr, "loadgen: -d wants 0 < SECS <= 600\n");
				usage(2);
			}
			break;
		case 'T': cfg.setup_secs = (double)int_arg(optarg, 1, 600, 'T'); break;
		case 'h': usage(0);
		default: usage(2);
		}
	}
	if (argc - optind != 1)
		usage(2);
	if (bn_parse_addr(argv[optind], &cfg.addr, err, sizeof err) < 0) {
		fprintf(stderr, "loadgen: %s\n", err);
		exit(2);
	}
	if (cfg.mode == M_IDLE && !idle_given)
		cfg.idle = 10000;
	if (cfg.mode != M_IDLE)
		cfg.idle = 0;
	if (cfg.mode == M_UDP && cfg.size > 65507) {
		fprintf(stderr, "loadgen: a UDP message is at most 65507 bytes\n");
		exit(2);
	}
}

/* The whole program's hard limit: a last resort against any hang. */
static void on_alarm(int sig)
{
	static const char msg[] = "loadgen: hard time limit reached, giving up\n";

	(void)sig;
	(void)!write(2, msg, sizeof msg - 1);
	_exit(3);
}

/* Split the connections over the threads and create them. */
static struct worker *start_workers(void)
{
	struct worker *ws = calloc((size_t)cfg.threads, sizeof *ws);
	int t, i, na, ni;

	if (!ws)
		return NULL;
	for (t = 0; t < cfg.threads; t++) {
		struct worker *w = &ws[t];

		na = cfg.conns / cfg.threads + (t < cfg.conns % cfg.threads);
		ni = cfg.idle / cfg.threads + (t < cfg.idle % cfg.threads);
		w->nactive = na;
		w->total = na + ni;
		w->conns = calloc((size_t)w->total + 1, sizeof *w->conns);
		w->ep = epoll_create1(EPOLL_CLOEXEC);
		w->src = (unsigned)t * 5;
		if (!w->conns || w->ep < 0)
			return NULL;
		for (i = 0; i < w->total; i++)
			w->conns[i].fd = -1;
		if (pthread_create(&w->tid, NULL, worker_main, w) != 0)
			return NULL;
	}
	return ws;
}

/* Print the one result line. */
static void report(struct worker *ws, struct mem peak)
{
	struct hist *h = calloc(1, sizeof *h);
	uint64_t reqs = 0, errors = 0, idle_lost = 0, ended = run_start;
	int t, connected = 0;
	double secs;

	if (!h)
		return;
	for (t = 0; t < cfg.threads; t++) {
		hist_merge(h, &ws[t].hist);
		reqs += ws[t].reqs;
		errors += ws[t].errors;
		idle_lost += ws[t].idle_lost;
		connected += ws[t].total - ws[t].dead;
		if (ws[t].ended > ended)
			ended = ws[t].ended;
	}
	secs = (double)(ended - run_start) / 1e9;
	if (secs <= 0)
		secs = cfg.secs;
	printf("mode=%s conns=%d idle=%d size=%u threads=%d secs=%.2f reqs=%llu "
	       "rps=%.0f p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f "
	       "errors=%llu",
	       mode_names[cfg.mode], cfg.conns, cfg.idle, cfg.size, cfg.threads, secs,
	       (unsigned long long)reqs, (double)reqs / secs,
	       hist_quantile_us(h, 0.50), hist_quantile_us(h, 0.99),
	       hist_quantile_us(h, 0.999), (double)h->max / 1000.0,
	       (unsigned long long)errors);
	if (cfg.mode != M_CONNECT)
		printf(" open_at_end=%d", connected);
	if (cfg.mode == M_IDLE)
		printf(" idle_lost=%llu", (unsigned long long)idle_lost);
	if (cfg.server)
		printf(" server_rss_kb=%ld server_vsz_kb=%ld server_procs=%d",
		       peak.rss_kb, peak.vsz_kb, peak.procs);
	printf("\n");
	fflush(stdout);
	free(h);
}

int main(int argc, char **argv)
{
	struct mem peak = { 0, 0, 0 };
	struct worker *ws;
	long need, got;
	uint64_t next_sample, reqs = 0;
	uint32_t i;
	int t;

	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGALRM, on_alarm);
	alarm((unsigned)cfg.secs + (unsigned)cfg.setup_secs + 30);

	need = (long)cfg.conns + cfg.idle + 64 + 8L * cfg.threads;
	got = bn_raise_nofile(need);
	if (got < need) {
		fprintf(stderr, "loadgen: %ld descriptors needed, RLIMIT_NOFILE allows %ld\n",
			need, got);
		return 2;
	}
	sendbuf = malloc(cfg.size);
	if (!sendbuf)
		return 2;
	for (i = 0; i < cfg.size; i++)
		sendbuf[i] = (unsigned char)(i * 31 + 7);

	pthread_barrier_init(&barrier, NULL, (unsigned)cfg.threads + 1);
	ws = start_workers();
	if (!ws) {
		fprintf(stderr, "loadgen: cannot start the load threads\n");
		return 2;
	}
	pthread_barrier_wait(&barrier);		/* set up */
	if (cfg.server)
		mem_peak(&peak, tree_mem(cfg.server));
	run_start = now_ns();
	run_end = run_start + (uint64_t)(cfg.secs * 1e9);
	pthread_barrier_wait(&barrier);		/* go */

	next_sample = run_start;
	while (atomic_load(&workers_done) < cfg.threads) {
		if (cfg.server && now_ns() >= next_sample) {
			mem_peak(&peak, tree_mem(cfg.server));
			next_sample += 200000000ull;
		}
		usleep(10000);
	}
	for (t = 0; t < cfg.threads; t++) {
		pthread_join(ws[t].tid, NULL);
		reqs += ws[t].reqs;
	}
	report(ws, peak);
	for (t = 0; t < cfg.threads; t++) {
		close(ws[t].ep);
		free(ws[t].conns);
	}
	free(ws);
	free(sendbuf);
	return reqs ? 0 : 1;	/* 1: not one request was answered */
}
