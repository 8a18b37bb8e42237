/*
 * switch.h - the coroutine machinery under the coroutine models:
 * guarded stacks and the context switch.  Internal to the coroutine runtime..
 *
 * On x86-64 the switch is a few instructions of assembly that save the
 * callee-saved registers, the stack pointer and the FPU control words
 * (libco / boost.context's shape: no system call per switch).  Elsewhere
 * it is ucontext's swapcontext, which is correct but makes a sigprocmask
 * system call per switch.  Under AddressSanitizer and ThreadSanitizer
 * every switch is announced to the runtime, which otherwise reports false
 * errors on the foreign stacks.
 *
 * Platform and sanitizer #ifs live here and in coro_switch.c only.
 */
#ifndef SS_CORO_SWITCH_H
#define SS_CORO_SWITCH_H

#include <stdbool.h>
#include <stddef.h>

#if defined(__x86_64__) && !defined(SS_CORO_UCONTEXT)
#define SS__CORO_ASM 1
#else
#define SS__CORO_ASM 0
#include <ucontext.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define SS__CORO_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SS__CORO_ASAN 1
#endif
#endif
#ifndef SS__CORO_ASAN
#define SS__CORO_ASAN 0
#endif

#if defined(__SANITIZE_THREAD__)
#define SS__CORO_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SS__CORO_TSAN 1
#endif
#endif
#ifndef SS__CORO_TSAN
#define SS__CORO_TSAN 0
#endif

/* A stack: one mapping whose lowest page is PROT_NONE (the guard), so an
 * overflow faults instead of writing over the next stack. */
struct ss__coro_stack {
	void *map;		/* the mapping, guard page first; NULL: none */
	size_t map_len;		/* guard + usable */
	void *base;		/* lowest usable byte (just above the guard) */
	size_t size;		/* usable bytes */
	unsigned valgrind_id;	/* its registration with valgrind */
};

/*
 * A context: where a coroutine (or the loop that runs coroutines) stopped.
 * The loop's context needs no stack of its own; a coroutine's is made by
 * ss__coro_make on a stack from ss__coro_stack_alloc.
 */
struct ss__coro_ctx {
#if SS__CORO_ASM
	void *sp;			/* saved stack pointer */
#else
	ucontext_t uc;
#endif
	void *stack;			/* stack bounds, for the sanitizers */
	size_t stack_size;
	struct ss__coro_ctx *caller;	/* a coroutine's loop (it learns the
					   loop's stack under ASan) */
	void *fake_stack;		/* ASan's fake stack while switched out */
	void *fiber;			/* TSan's fiber */
	void (*fn)(void *);		/* the body and its argument */
	void *arg;
};

/* Map a stack of size usable bytes (rounded up to pages) plus a guard
 * page, lazily backed (untouched pages cost no memory).  0 or a negative
 * errno. */
int ss__coro_stack_alloc(struct ss__coro_stack *st, size_t size);

/* Unmap a stack (NULL map is fine). */
void ss__coro_stack_free(struct ss__coro_stack *st);

/*
 * Prepare ctx to run fn(arg) on stack when first switched to, returning
 * to caller's context by ss__coro_switch.  fn must never return: it ends
 * with ss__coro_exit.  0 or a negative errno.
 */
int ss__coro_make(struct ss__coro_ctx *ctx, struct ss__coro_ctx *caller,
		  const struct ss__coro_stack *stack, void (*fn)(void *), void *arg);

/* Save the current context in from and run to; returns when something
 * switches back to from. */
void ss__coro_switch(struct ss__coro_ctx *from, struct ss__coro_ctx *to);

/* The last switch of a finished coroutine (its stack may be freed once
 * the caller runs).  Never returns. */
void ss__coro_exit(struct ss__coro_ctx *from, struct ss__coro_ctx *to)
	__attribute__((noreturn));

/* Release what the sanitizers keep for a finished coroutine's context. */
void ss__coro_release(struct ss__coro_ctx *ctx);

#endif /* SS_CORO_SWITCH_H */
