/*
 * pe_cpu.c — what the trampoline must save on this CPU, and whether it may run at all.
 *
 * The trampoline (pe_trampoline_amd64.c) preserves the complete architectural state of the
 * interrupted code (docs/design.md invariant 4). For the extended state that means XSAVE with the
 * requested-feature bitmap equal to XCR0 — every component the OS enabled — into an area whose
 * size CPUID leaf 0xD subleaf 0 reports in EBX for the current XCR0. A narrower mask (SSE|AVX
 * only) was tried in the prototype and corrupted zmm16-31 and the opmask registers on AVX-512
 * machines as soon as the hook ran libc string functions. Where the OS has not enabled XSAVE
 * (CPUID.1:ECX.OSXSAVE clear) the trampoline falls back to FXSAVE (x87/MMX/SSE, 512 bytes).
 *
 * XSAVEOPT and XSAVEC are deliberately not used: XSAVEOPT skips components it believes unchanged
 * since the last XRSTOR *from the same address*, and greenlet copies different goroutines'
 * stacks to the same addresses; XSAVEC's compacted form buys nothing for one area per park.
 *
 * Async preemption is reported unavailable when CET shadow stacks are enabled for the process:
 * the trampoline is entered by a pushed return address that the shadow stack never saw, so its
 * final `ret` would fault.
 */
#include "pe_internal.h"

#include <cpuid.h>
#include <string.h>
#include <sys/syscall.h>

PE_HIDDEN uint32_t pe_cpu_xsave_size;
PE_HIDDEN uint32_t pe_cpu_xsave_lo;
PE_HIDDEN uint32_t pe_cpu_xsave_hi;
PE_HIDDEN uint64_t pe_cpu_frame_bytes;

#ifndef ARCH_SHSTK_STATUS
#define ARCH_SHSTK_STATUS 0x5005
#endif
#define PE_SHSTK_ENABLED 1ULL /* ARCH_SHSTK_SHSTK */

/* xgetbv(0) = XCR0. Only valid when CPUID says OSXSAVE. Any context. */
static uint64_t pe_xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

/* Probe the CPU once (pe_init, under its once-guard). Returns NULL when async preemption can work
 * or a static string saying why not. Normal context only. */
PE_HIDDEN const char *pe_cpu_probe(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return "CPUID leaf 1 is not available";
    if (!(d & bit_FXSAVE))
        return "the CPU has no FXSAVE";
    if ((c & bit_OSXSAVE) && __get_cpuid_max(0, NULL) >= 0xD) {
        uint64_t mask = pe_xgetbv0();
        __cpuid_count(0xD, 0, a, b, c, d);
        if (b < 576 || b > (1u << 20))
            return "CPUID leaf 0xD reports an implausible XSAVE area size";
        pe_cpu_xsave_size = b;
        pe_cpu_xsave_lo = (uint32_t)mask;
        pe_cpu_xsave_hi = (uint32_t)(mask >> 32);
        pe_cpu_frame_bytes = (uint64_t)b + 64; /* slack for 64-byte alignment */
    } else {
        pe_cpu_xsave_size = 0;
        pe_cpu_frame_bytes = 512 + 64;
    }
    unsigned long long features = 0;
    if (syscall(SYS_arch_prctl, ARCH_SHSTK_STATUS, &features) == 0 && (features & PE_SHSTK_ENABLED))
        return "CET shadow stacks are enabled for this process: the trampoline's pushed return "
               "address would fault";
    return NULL;
}

/* Size of the XSAVE area in use, 0 when the FXSAVE fallback is used. Any thread. */
uint32_t pe_xsave_size(void)
{
    return pe_cpu_xsave_size;
}

/* The XCR0 feature mask XSAVE uses. Any thread. */
uint64_t pe_xsave_mask(void)
{
    return ((uint64_t)pe_cpu_xsave_hi << 32) | pe_cpu_xsave_lo;
}

/* Testing aid: overwrite every saved-and-restored component of the extended state (x87 control,
 * MXCSR, XMM/YMM/ZMM, opmask) with garbage by XRSTOR-ing a garbage image. The register-integrity
 * tests enable it (pe_debug_scramble_on_park) so that a component the trampoline failed to save
 * is destroyed while the thread is parked, instead of surviving by luck because the default park
 * (a futex wait) happens not to touch it. MPX, PKRU and AMX components are left alone: garbage
 * there changes memory protection or faults. Trampoline entry only (normal context). */
PE_HIDDEN void pe_cpu_scramble_extended_state(void)
{
    uint32_t size = pe_cpu_xsave_size ? pe_cpu_xsave_size : 512;
    if (size > 16384)
        return;
    unsigned char raw[16384 + 64];
    unsigned char *area = (unsigned char *)(((uintptr_t)raw + 63) & ~(uintptr_t)63);
    memset(area, 0x5a, size);
    uint16_t fcw = 0x027f, fsw = 0;
    uint32_t mxcsr = 0x3fc0;
    memcpy(area + 0, &fcw, 2);
    memcpy(area + 2, &fsw, 2);
    area[4] = 0; /* abridged tag word: every x87 register empty */
    memcpy(area + 24, &mxcsr, 4);
    if (pe_cpu_xsave_size) {
        uint64_t bv = pe_xsave_mask() & 0xe7; /* x87, SSE, AVX, opmask, ZMM_Hi256, Hi16_ZMM */
        memset(area + 512, 0, 64);
        memcpy(area + 512, &bv, 8);
        __asm__ volatile("xrstor64 (%0)" : : "r"(area), "a"((uint32_t)bv), "d"((uint32_t)(bv >> 32)) : "memory");
    } else {
        __asm__ volatile("fxrstor64 (%0)" : : "r"(area) : "memory");
    }
}
