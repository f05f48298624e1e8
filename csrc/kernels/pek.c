/* pek.c — see pek.h. */
#include "pek.h"

/* xorshift64 rounds. Any thread. */
uint64_t pek_spin(uint64_t iters)
{
    uint64_t x = 88172645463325252ULL;
    for (uint64_t i = 0; i < iters; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        __asm__ volatile("" : "+r"(x));
    }
    return x;
}

/* xorshift64 rounds until *stop. Any thread. */
uint64_t pek_spin_until(volatile int32_t *stop)
{
    uint64_t x = 88172645463325252ULL;
    while (!*stop) {
        for (int i = 0; i < 4096; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            __asm__ volatile("" : "+r"(x));
        }
    }
    return x;
}
