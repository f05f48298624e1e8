/*
 * pek.h — preempt's demo and benchmark kernels (module preempt._kernels).
 *
 * Long-running, reentrant, lock-free native loops with no calls out: exactly the kind of code the
 * preemptible-region contract admits. They live in their own shared object because the core
 * refuses to register itself. Every function may run on any thread, GIL released.
 */
#ifndef PEK_H
#define PEK_H
#include <stdint.h>

/* CDEF BEGIN */
/* xorshift64 for iters rounds: CPU-bound, no memory traffic, no calls. */
uint64_t pek_spin(uint64_t iters);
/* The same, but checks a flag every 4096 rounds and stops when it becomes non-zero. */
uint64_t pek_spin_until(volatile int32_t *stop);
/* CDEF END */

#endif
