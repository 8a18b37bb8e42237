/*
 * switch.c - guarded coroutine stacks and the context switch (see
 * switch.h): an x86-64 assembly switch, a ucontext fallback for
 * other machines, and the sanitizer annotations around every switch.
 */
#include "switch.h"

#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

/* Valgrind must be told where the coroutine stacks are, or it takes every
 * switch for a wild stack-pointer change and every access there for an
 * invalid one.  The client requests cost a few instructions outside
 * valgrind; without its header (it is not installed) they compile away. */
#if defined(__has_include) && !defined(__cppcheck__)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define SS__CORO_VALGRIND 1
#endif
#endif

/* The sanitizers' fiber interfaces (declared here rather than through
 * their headers, which older compilers lack). */
#if SS__CORO_ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom,
				    size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save, const void **bottom_old,
				     size_t *size_old);
void __asan_unpoison_memory_region(const volatile void *addr, size_t size);
#endif
#if SS__CORO_TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif

/* ------------------------------------------------------------------ */
/* Stacks                                                              */
/* ------------------------------------------------------------------ */

static size_t page_size(void)
{
	long p = sysconf(_SC_PAGESIZE);

	return p > 0 ? (size_t)p : 4096u;
}

int ss__coro_stack_alloc(struct ss__coro_stack *st, size_t size)
{
	size_t page = page_size();
	void *map;

	size = (size + page - 1) / page * page;
	if (size == 0 || size > SIZE_MAX - page)
		return -EINVAL;
	map = mmap(NULL, size + page, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
	if (map == MAP_FAILED)
		return -errno;
	if (mprotect(map, page, PROT_NONE) < 0) {
		int err = -errno;

		munmap(map, size + page);
		return err;
	}
	st->map = map;
	st->map_len = size + page;
	st->base = (char *)map + page;
	st->size = size;
#ifdef SS__CORO_VALGRIND
	st->valgrind_id = VALGRIND_STACK_REGISTER(st->base, (char *)st->base + size);
#endif
	return 0;
}

void ss__coro_stack_free(struct ss__coro_stack *st)
{
	if (!st->map)
		return;
#if SS__CORO_ASAN
	/* frames left on a finished coroutine's stack keep their poisoned
	 * red zones in the shadow, which would outlive the mapping */
	__asan_unpoison_memory_region(st->base, st->size);
#endif
#ifdef SS__CORO_VALGRIND
	VALGRIND_STACK_DEREGISTER(st->valgrind_id);
#endif
	munmap(st->map, st->map_len);
	st->map = NULL;
}

/* ------------------------------------------------------------------ */
/* Sanitizer annotations                                               */
/* ------------------------------------------------------------------ */

/* Before a switch from `from` to `to`; dying: from never runs again. */
static void before_switch(struct ss__coro_ctx *from, struct ss__coro_ctx *to, bool dying)
{
#if SS__CORO_ASAN
	__sanitizer_start_switch_fiber(dying ? NULL : &from->fake_stack, to->stack,
				       to->stack_size);
#endif
#if SS__CORO_TSAN
	if (!dying)
		from->fiber = __tsan_get_current_fiber();
	__tsan_switch_to_fiber(to->fiber, 0);
#endif
	(void)from;
	(void)to;
	(void)dying;
}

/* Back in self after a switch (or on a coroutine's first run, with no
 * fake stack yet): a coroutine learns its loop's stack bounds here. */
static void after_switch(struct ss__coro_ctx *self, bool first)
{
#if SS__CORO_ASAN
	const void *bottom;
	size_t size;

	__sanitizer_finish_switch_fiber(first ? NULL : self->fake_stack, &bottom, &size);
	if (self->caller) {
		self->caller->stack = (void *)(uintptr_t)bottom;
		self->caller->stack_size = size;
	}
#endif
	(void)self;
	(void)first;
}

/* Every coroutine starts here (on its own stack) and never returns. */
static void __attribute__((noreturn)) boot(struct ss__coro_ctx *ctx)
{
	after_switch(ctx, true);
	ctx->fn(ctx->arg);
	__builtin_unreachable();	/* fn ends with ss__coro_exit */
}

/* ------------------------------------------------------------------ */
/* x86-64: the assembly switch                                         */
/* ------------------------------------------------------------------ */

#if SS__CORO_ASM

/*
 * ss__coro_jump(save, sp): push the callee-saved registers and the SSE
 * and x87 control words, store the stack pointer in *save, load sp and
 * pop the same from there.  ss__coro_boot is where a new context's first
 * `ret` lands: it calls r12(r13) on a 16-byte aligned stack.
 */
void ss__coro_jump(void **save, void *sp) __attribute__((visibility("hidden")));
void ss__coro_boot(void) __attribute__((visibility("hidden")));

__asm__(
	".pushsection .text\n"
	".p2align 4\n"
	".globl ss__coro_jump\n"
	".hidden ss__coro_jump\n"
	".type ss__coro_jump,@function\n"
	"ss__coro_jump:\n"
	"	pushq %rbp\n"
	"	pushq %rbx\n"
	"	pushq %r12\n"
	"	pushq %r13\n"
	"	pushq %r14\n"
	"	pushq %r15\n"
	"	subq $8, %rsp\n"
	"	stmxcsr (%rsp)\n"
	"	fnstcw 4(%rsp)\n"
	"	movq %rsp, (%rdi)\n"
	"	movq %rsi, %rsp\n"
	"	ldmxcsr (%rsp)\n"
	"	fldcw 4(%rsp)\n"
	"	addq $8, %rsp\n"
	"	popq %r15\n"
	"	popq %r14\n"
	"	popq %r13\n"
	"	popq %r12\n"
	"	popq %rbx\n"
	"	popq %rbp\n"
	"	ret\n"
	".size ss__coro_jump,.-ss__coro_jump\n"
	".p2align 4\n"
	".globl ss__coro_boot\n"
	".hidden ss__coro_boot\n"
	".type ss__coro_boot,@function\n"
	"ss__coro_boot:\n"
	"	movq %r13, %rdi\n"
	"	callq *%r12\n"
	"	ud2\n"
	".size ss__coro_boot,.-ss__coro_boot\n"
	".popsection\n");

/* The first frame of a new context, laid out as ss__coro_jump pops it:
 * control words (MXCSR 0x1f80, x87 0x037f), r15..r12 (r12 = boot, r13 =
 * ctx), rbx, rbp (0: the end of the frame chain), then ss__coro_boot as
 * the return address with the stack 16-byte aligned after it. */
static void make_frame(struct ss__coro_ctx *ctx, const struct ss__coro_stack *st)
{
	uintptr_t top = ((uintptr_t)st->base + st->size) & ~(uintptr_t)15;
	uint64_t *sp = (uint64_t *)top;

	*--sp = 0;
	*--sp = 0;
	*--sp = (uint64_t)(uintptr_t)ss__coro_boot;
	*--sp = 0;					/* rbp */
	*--sp = 0;					/* rbx */
	*--sp = (uint64_t)(uintptr_t)boot;		/* r12 */
	*--sp = (uint64_t)(uintptr_t)ctx;		/* r13 */
	*--sp = 0;					/* r14 */
	*--sp = 0;					/* r15 */
	*--sp = 0x1f80u | ((uint64_t)0x037fu << 32);	/* mxcsr, fpu cw */
	ctx->sp = sp;
}

static int make_context(struct ss__coro_ctx *ctx, const struct ss__coro_stack *st)
{
	make_frame(ctx, st);
	return 0;
}

static void raw_switch(struct ss__coro_ctx *from, struct ss__coro_ctx *to)
{
	ss__coro_jump(&from->sp, to->sp);
}

#else

/* ------------------------------------------------------------------ */
/* Elsewhere: ucontext                                                 */
/* ------------------------------------------------------------------ */

/* makecontext passes ints: the context pointer travels in two halves. */
static void uc_entry(unsigned hi, unsigned lo)
{
	uintptr_t p = ((uintptr_t)hi << 16 << 16) | (uintptr_t)lo;

	boot((struct ss__coro_ctx *)p);
}

static int make_context(struct ss__coro_ctx *ctx, const struct ss__coro_stack *st)
{
	uintptr_t p = (uintptr_t)ctx;

	if (getcontext(&ctx->uc) < 0)
		return -errno;
	ctx->uc.uc_stack.ss_sp = st->base;
	ctx->uc.uc_stack.ss_size = st->size;
	ctx->uc.uc_link = NULL;
	makecontext(&ctx->uc, (void (*)(void))uc_entry, 2,
		    (unsigned)(p >> 16 >> 16), (unsigned)(p & 0xffffffffu));
	return 0;
}

static void raw_switch(struct ss__coro_ctx *from, struct ss__coro_ctx *to)
{
	swapcontext(&from->uc, &to->uc);
}

#endif

/* ------------------------------------------------------------------ */
/* The portable part                                                   */
/* ------------------------------------------------------------------ */

int ss__coro_make(struct ss__coro_ctx *ctx, struct ss__coro_ctx *caller,
		  const struct ss__coro_stack *st, void (*fn)(void *), void *arg)
{
	int rc;

	ctx->stack = st->base;
	ctx->stack_size = st->size;
	ctx->caller = caller;
	ctx->fake_stack = NULL;
	ctx->fn = fn;
	ctx->arg = arg;
#if SS__CORO_ASAN
	__asan_unpoison_memory_region(st->base, st->size);	/* a reused stack */
#endif
	rc = make_context(ctx, st);
	if (rc < 0)
		return rc;
#if SS__CORO_TSAN
	ctx->fiber = __tsan_create_fiber(0);
#else
	ctx->fiber = NULL;
#endif
	return 0;
}

void ss__coro_switch(struct ss__coro_ctx *from, struct ss__coro_ctx *to)
{
	before_switch(from, to, false);
	raw_switch(from, to);
	after_switch(from, false);
}

void ss__coro_exit(struct ss__coro_ctx *from, struct ss__coro_ctx *to)
{
	before_switch(from, to, true);
	raw_switch(from, to);
	__builtin_unreachable();
}

void ss__coro_release(struct ss__coro_ctx *ctx)
{
#if SS__CORO_TSAN
	if (ctx->fiber)
		__tsan_destroy_fiber(ctx->fiber);
#endif
	ctx->fiber = NULL;
}
