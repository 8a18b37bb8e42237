/*
 * testutil.h - helpers the TAP programs share: servers on ephemeral
 * addresses, serve_forever in a thread, clients of every kind with
 * deadlines, a standard echo handler, fd / thread / child counting,
 * condition polling with a deadline, a per-process temp dir, counters
 * in shared memory that forked children can bump, and a count of the
 * handle_error calls made in this process.
 *
 * Every helper that can fail in a way the test cannot recover from calls
 * tap_bail() with the reason; the others return a negative errno.
 * No helper sleeps as synchronisation: tu_wait_until polls a condition.
 */
#ifndef TESTUTIL_H
#define TESTUTIL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <socketserver.h>

/* 1 in an address or thread sanitizer build (they change memory use and
 * stack depth), else 0. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TU_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TU_SANITIZED 1
#endif
#endif
#ifndef TU_SANITIZED
#define TU_SANITIZED 0
#endif

/* 1 in a thread sanitizer build, which defers signal handlers until a
 * thread enters a call it intercepts as blocking. */
#if defined(__SANITIZE_THREAD__)
#define TU_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TU_TSAN 1
#endif
#endif
#ifndef TU_TSAN
#define TU_TSAN 0
#endif

/* Deadline of every client helper, seconds. */
#define TU_IO_TIMEOUT 10.0

/* Call first in main: ignores SIGPIPE and starts and joins one thread,
 * so helper threads a runtime starts lazily (the thread sanitizer's)
 * exist before the tests take thread-count baselines. */
void tu_init(void);

/* --- servers --- */

/*
 * A new server of kind ops with mixin m (NULL: sync) and handler h on addr;
 * addr NULL means "127.0.0.1:0" for inet kinds, or a fresh path in the
 * per-process temp dir for unix kinds.  Bails out on failure.
 */
ss_server *tu_server(const ss_server_ops *ops, const ss_mixin *m,
		     const ss_handler *h, const char *addr);
/* Same, returning NULL (and filling err) instead of bailing. */
ss_server *tu_server_try(const ss_server_ops *ops, const ss_mixin *m,
			 const ss_handler *h, const char *addr, ss_error *err);

/* Run ss_server_serve_forever(s, 0.5) in a new thread *t. */
void tu_serve_start(ss_server *s, pthread_t *t);
/* Same with an explicit poll interval. */
void tu_serve_start_interval(ss_server *s, pthread_t *t, double interval);
/* ss_server_shutdown(s) + pthread_join(*t).  Returns serve_forever's
 * result. */
int tu_serve_stop(ss_server *s, pthread_t *t);
/* ss_server_close_within(s, grace); how long it took, in ms. */
double tu_close_within_ms(ss_server *s, double grace);

/* Join t within seconds (pthread_timedjoin_np); false if it is still
 * running.  *ret (may be NULL) gets the thread's result. */
bool tu_join_within(pthread_t t, double seconds, void **ret);

/* --- clients (every call bounded by TU_IO_TIMEOUT) --- */

/* A client socket connected to s: stream kinds connect(); datagram kinds
 * get a socket connected to the server (unix ones autobound first so
 * replies can come back).  SO_RCVTIMEO / SO_SNDTIMEO set.  Bails out on
 * failure. */
int tu_connect(const ss_server *s);
/* Same, returning a negative errno instead of bailing. */
int tu_connect_try(const ss_server *s);

/* Send msg and read the whole echo into out (at most cap bytes): stream
 * kinds send, shutdown(SHUT_WR) and read to EOF; datagram kinds send one
 * datagram and receive one.  Returns the reply length or a negative
 * errno (-ETIMEDOUT after TU_IO_TIMEOUT). */
ssize_t tu_roundtrip(const ss_server *s, const void *msg, size_t n,
		     char *out, size_t cap);
/* The same on an already connected client fd (closed by the caller). */
ssize_t tu_roundtrip_fd(int fd, int socktype, const void *msg, size_t n,
			char *out, size_t cap);
/* One round trip of the NUL-terminated msg (at most 63 bytes): true when
 * the whole of it came back. */
bool tu_echo_once(const ss_server *s, const char *msg);
/* True when a read or round-trip result n says the server ended the
 * connection without a reply: EOF, or a reset, which is what the kernel
 * sends instead of FIN when the server closes with input still unread
 * (the two depend on timing, so a test must accept both). */
bool tu_unanswered(ssize_t n);

/* Blocking helpers with a deadline (EINTR retried). */
int tu_send_all(int fd, const void *buf, size_t n);
/* Read until EOF or cap bytes; count, or -errno (-ETIMEDOUT). */
ssize_t tu_read_to_eof(int fd, void *buf, size_t cap, double timeout);
/* Read exactly n bytes (fewer at EOF); count, or -errno (-ETIMEDOUT). */
ssize_t tu_read_exact(int fd, void *buf, size_t n, double timeout);
/* Wait until fd is readable (or hung up); 0, -ETIMEDOUT or -errno. */
int tu_wait_readable(int fd, double timeout);

/* --- handlers --- */

/* Loop ss_read_some -> ss_write_all until EOF (0) or an error. */
extern const ss_handler tu_echo_handler;
int tu_echo(ss_request *r);

/* --- process state --- */

/* Open fds of this process (via /proc/self/fd, not counting the one used
 * to read it). */
int tu_count_fds(void);
/* Threads of this process (/proc/self/task). */
int tu_count_threads(void);
/* The live (not zombie) children of process pid, from /proc: fills pids
 * (at most max) and returns how many. */
int tu_children_of(pid_t pid, pid_t *pids, int max);
/* True when fd is not open (fcntl F_GETFD fails with EBADF). */
bool tu_fd_closed(int fd);
/* True when this process has no children left (waitpid -> ECHILD); a
 * zombie or live child makes it false (nothing is reaped: WNOWAIT). */
bool tu_no_children(void);

/* Poll cond(arg) every millisecond until true or seconds pass; returns
 * its last value. */
bool tu_wait_until(bool (*cond)(void *arg), void *arg, double seconds);
/* Wait until tu_count_threads() <= n, at most seconds. */
bool tu_wait_threads_at_most(int n, double seconds);
/* Wait until ss_server_active_count(s) == n, at most seconds. */
bool tu_wait_active(ss_server *s, size_t n, double seconds);

/* Monotonic seconds. */
double tu_now(void);

/* The per-process temp dir (mkdtemp, removed with its contents at exit). */
const char *tu_tmpdir(void);
/* A fresh path "<tmpdir>/<tag>-<n>.sock" (static buffer per call ring of
 * 8; copy it to keep it long). */
const char *tu_tmppath(const char *tag);

/* --- shared counters (visible across fork) --- */

/* n atomic ints in MAP_SHARED|MAP_ANONYMOUS memory, zeroed; never freed
 * (they live as long as the process). */
atomic_int *tu_shared_counters(size_t n);

/* --- handle_error calls seen in this process --- */

/* A count and the last message, under a mutex.  Not for handle_error
 * calls in forked children: one could inherit the mutex locked. */
typedef struct tu_errors {
	pthread_mutex_t mu;
	int count;
	char last[SS_ERRMSG_MAX];
} tu_errors;

#define TU_ERRORS_INIT { .mu = PTHREAD_MUTEX_INITIALIZER }

/* Count one call with message msg. */
void tu_errors_add(tu_errors *e, const char *msg);
/* The calls counted, the last message into last (len bytes; last may be
 * NULL); then both start over. */
int tu_errors_take(tu_errors *e, char *last, size_t len);
/* True when a call was counted; a tu_wait_until condition (arg: e). */
bool tu_errors_any(void *e);

/* --- stderr capture --- */

/* Redirect stderr to a temp file; tu_stderr_end restores it and returns
 * what was written (malloc'd, NUL-terminated; caller frees). */
void tu_stderr_begin(void);
char *tu_stderr_end(void);

/* --- child programs (the example servers, openssl s_client) --- */

/* Monotonic milliseconds, and what is left of a deadline in them as a
 * poll() timeout (>= 0). */
double tu_now_ms(void);
int tu_left_ms(double deadline_ms);

/* The build directory BUILD, absolute, found from this test program's own
 * path (which is BUILD/tests/t_...). */
const char *tu_build_dir(void);

/* BUILD/examples/name; bails out if it is not an executable. */
const char *tu_example_path(const char *name);

/*
 * Start the program path with argv (argv[0] is only its name).  Its stdin
 * is a pipe (*in) or /dev/null when in is NULL; its stdout goes to a pipe
 * (*out), its stderr to a pipe (*err) or, when err is NULL, to ours.  Our
 * ends are close-on-exec, so no other child inherits them.  Returns the
 * pid; bails out when it cannot fork.
 */
pid_t tu_spawn(const char *path, const char *const argv[], int *in, int *out, int *err);

/* Wait up to timeout_ms for pid to exit (a WNOHANG poll every 5 ms).
 * Returns its exit status, 128 + signal if a signal ended it, or -1 on
 * timeout (it is then SIGKILLed and reaped).  *elapsed_ms, if given,
 * gets the time waited. */
int tu_wait_exit(pid_t pid, int timeout_ms, double *elapsed_ms);

/* Read from fd into buf (size bytes, kept NUL-terminated) until EOF, or
 * only up to the first '\n' when line is set, waiting at most timeout_ms.
 * Returns the length, or -1 on timeout or error (buf holds what came). */
ssize_t tu_read_until(int fd, char *buf, size_t size, bool line, int timeout_ms);

/* Run the example argv[0] (found by tu_example_path, stdin /dev/null) to
 * its end: its stdout into out and its stderr into err (NUL-terminated),
 * each read and the exit waited for within timeout_ms.  Returns the exit
 * status as tu_wait_exit does. */
int tu_run_example(const char *const argv[], char *out, size_t out_size, char *err,
		   size_t err_size, int timeout_ms);

/* Reap pid (EINTR retried): its exit status, 1000 + signal if a signal
 * ended it, or a negative errno when it is not our child to reap. */
int tu_exit_status(pid_t pid);

/* Lines in s (a last line without '\n' counts). */
int tu_count_lines(const char *s);

/* A connected TCP socket to address as text ("127.0.0.1:port": what an
 * example printed), or -1 with the reason as a TAP diagnostic. */
int tu_tcp_connect(const char *address);

/* --- checks several test programs make --- */

/* A TCP server of model m with one idle client whose handler blocks in
 * read: with daemon_threads (daemon) or block_on_close = false, close
 * returns at once, the handler ends once its client leaves and its thread
 * is gone.  Three checks, named after what. */
void tu_check_prompt_close(const ss_mixin *m, bool daemon, const char *what);

#endif /* TESTUTIL_H */
