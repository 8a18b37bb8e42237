/*
 * ss_selector.h - one interface over select, poll and epoll, like Python's
 * selectors module.  The server loop waits through it; coroutine models
 * register their connections on the same selector.
 *
 *   ss_selector *sel = ss_selector_new(NULL, &err);       best backend
 *   ss_selector_register(sel, fd, SS_EVENT_READ, ptr);
 *   n = ss_selector_select(sel, events, 64, 0.5);         ready count
 *   ss_selector_free(sel);
 *
 * Level-triggered on every backend.  Not thread-safe: one thread uses a
 * selector at a time.
 */
#ifndef SS_SELECTOR_H
#define SS_SELECTOR_H

#include <socketserver.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SS_EVENT_READ  0x1
#define SS_EVENT_WRITE 0x2
/* With READ: wake only one of the selectors (in threads or processes)
 * watching the same listening socket, not all (EPOLLEXCLUSIVE; other
 * backends ignore it).  Avoids the thundering herd when workers accept on
 * one socket. */
#define SS_EVENT_EXCLUSIVE 0x4

typedef struct ss_selector ss_selector;

/* One ready fd: the events that are ready (an error or hang-up is
 * reported as both READ and WRITE, whichever were registered, so the next
 * I/O call sees it) and the data given at registration. */
typedef struct ss_selector_event {
	int fd;
	int events;
	void *data;
} ss_selector_event;

/* backend: "epoll", "poll", "select", or NULL for the best the platform
 * has (epoll on Linux).  NULL with err filled on failure ("selector
 * 'kqueue': not available here (epoll, poll, select)"). */
SS_EXTERN ss_selector *ss_selector_new(const char *backend, ss_error *err);

/* The backend's name. */
SS_EXTERN const char *ss_selector_backend(const ss_selector *sel);

/* Watch fd for events (SS_EVENT_READ | SS_EVENT_WRITE, not 0).  0, or
 * -EEXIST if already registered, -EINVAL for bad events or (select) an fd
 * >= FD_SETSIZE, -ENOMEM. */
SS_EXTERN int ss_selector_register(ss_selector *sel, int fd, int events, void *data);

/* Change what fd is watched for (0 pauses it without forgetting it) and
 * its data.  0 or -ENOENT if not registered. */
SS_EXTERN int ss_selector_modify(ss_selector *sel, int fd, int events, void *data);

/* Forget fd (call before closing it).  0 or -ENOENT. */
SS_EXTERN int ss_selector_unregister(ss_selector *sel, int fd);

/* Number of registered fds. */
SS_EXTERN size_t ss_selector_count(const ss_selector *sel);

/* Wait at most timeout seconds (< 0: forever; 0: just look) and fill up
 * to max events.  Returns the count (0 on timeout or EINTR) or a negative
 * errno. */
SS_EXTERN int ss_selector_select(ss_selector *sel, ss_selector_event *events, int max,
		       double timeout);

/* Free the selector (not the fds).  NULL is fine. */
SS_EXTERN void ss_selector_free(ss_selector *sel);

#ifdef __cplusplus
}
#endif

#endif /* SS_SELECTOR_H */
