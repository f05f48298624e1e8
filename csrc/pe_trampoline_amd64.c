/*
 * pe_trampoline_amd64.c — the code an asynchronously preempted thread resumes in.
 *
 * The SIGURG handler (pe_signal.c) decides the interrupted instruction is an async safe-point and
 * rewrites the signal's ucontext so that, when the kernel returns from the handler, the thread
 * runs here instead of at the interrupted RIP:
 *
 *     interrupted RSP  ->  +----------------------+
 *                          | 128-byte red zone    |  left untouched (the leaf's live data)
 *                          +----------------------+
 *     entry RSP        ->  | interrupted RIP      |  pushed by the handler
 *                          +----------------------+
 *
 * All registers hold exactly what the interrupted code had: the kernel restored them from the
 * ucontext. The trampoline, like Go's asyncPreempt (preempt_amd64.s), does one thing: save
 * everything, call one C function, restore everything, return.
 *
 *   1. push RFLAGS and the 15 general registers (the pe_gregs_t frame), then clear DF — the SysV
 *      ABI requires DF=0 at every call, and interrupted code may have set it;
 *   2. reserve pe_cpu_frame_bytes, align RSP down to 64 (XSAVE's requirement, which also leaves
 *      the stack 16-byte aligned for the call), zero the 64-byte XSAVE header (XRSTOR faults on
 *      a non-zero XCOMP_BV or reserved bytes, and the stack holds garbage), and XSAVE every
 *      component enabled in XCR0 (FXSAVE where the OS has no XSAVE: see pe_cpu.c);
 *   3. call pe_async_preempt_entry(frame, area): it publishes the frame, parks or runs the hook,
 *      and returns when the thread may continue;
 *   4. XRSTOR, pop the general registers and RFLAGS (restoring DF, CF, ...), and `ret $128`:
 *      the return pops the interrupted RIP and then skips the red zone, so RSP is exactly the
 *      interrupted RSP again.
 *
 * Nothing here or in the entry function may touch the red zone or anything above it; the C code
 * runs entirely below the XSAVE area. This file is file-scope assembly inside a .c file because
 * setuptools does not compile .S sources (CONVENTIONS.md, "cffi packages").
 *
 * An alternative would be to do the work inside the signal handler itself, as a user-level
 * context switch from the handler. That is not signal-safe (the scheduler takes locks and runs
 * Python) and would pin the kernel's signal frame on the goroutine's stack; Go rejected it for
 * the same reasons.
 */
#include "pe_internal.h"

__asm__(
    "    .pushsection .text\n"
    "    .globl pe_trampoline\n"
    "    .hidden pe_trampoline\n"
    "    .type pe_trampoline,@function\n"
    "    .p2align 4\n"
    "pe_trampoline:\n"
    "    pushfq\n"
    "    pushq %rax\n"
    "    pushq %rbx\n"
    "    pushq %rcx\n"
    "    pushq %rdx\n"
    "    pushq %rsi\n"
    "    pushq %rdi\n"
    "    pushq %rbp\n"
    "    pushq %r8\n"
    "    pushq %r9\n"
    "    pushq %r10\n"
    "    pushq %r11\n"
    "    pushq %r12\n"
    "    pushq %r13\n"
    "    pushq %r14\n"
    "    pushq %r15\n"
    "    movq %rsp, %rbp\n"                 /* rbp = &pe_gregs_t, callee-saved across the call */
    "    cld\n"
    "    subq pe_cpu_frame_bytes(%rip), %rsp\n"
    "    andq $-64, %rsp\n"
    "    xorl %eax, %eax\n"
    "    movq %rax, 512(%rsp)\n"
    "    movq %rax, 520(%rsp)\n"
    "    movq %rax, 528(%rsp)\n"
    "    movq %rax, 536(%rsp)\n"
    "    movq %rax, 544(%rsp)\n"
    "    movq %rax, 552(%rsp)\n"
    "    movq %rax, 560(%rsp)\n"
    "    movq %rax, 568(%rsp)\n"
    "    movl pe_cpu_xsave_size(%rip), %ecx\n"
    "    testl %ecx, %ecx\n"
    "    jz 1f\n"
    "    movl pe_cpu_xsave_lo(%rip), %eax\n"
    "    movl pe_cpu_xsave_hi(%rip), %edx\n"
    "    xsave64 (%rsp)\n"
    "    jmp 2f\n"
    "1:  fxsave64 (%rsp)\n"
    "2:  movq %rbp, %rdi\n"
    "    movq %rsp, %rsi\n"
    "    call pe_async_preempt_entry\n"
    "    movl pe_cpu_xsave_size(%rip), %ecx\n"
    "    testl %ecx, %ecx\n"
    "    jz 3f\n"
    "    movl pe_cpu_xsave_lo(%rip), %eax\n"
    "    movl pe_cpu_xsave_hi(%rip), %edx\n"
    "    xrstor64 (%rsp)\n"
    "    jmp 4f\n"
    "3:  fxrstor64 (%rsp)\n"
    "4:  movq %rbp, %rsp\n"
    "    popq %r15\n"
    "    popq %r14\n"
    "    popq %r13\n"
    "    popq %r12\n"
    "    popq %r11\n"
    "    popq %r10\n"
    "    popq %r9\n"
    "    popq %r8\n"
    "    popq %rbp\n"
    "    popq %rdi\n"
    "    popq %rsi\n"
    "    popq %rdx\n"
    "    popq %rcx\n"
    "    popq %rbx\n"
    "    popq %rax\n"
    "    popfq\n"
    "    ret $128\n"
    "    .size pe_trampoline, .-pe_trampoline\n"
    "    .popsection\n");
