/*
 * pe_init.c — the core's start, and the fork() child of every part.
 *
 * pe_init() sets the process up once (pthread_once), from any thread: the thread registry's
 * key, the CPU probe (XSAVE), the SIGURG handler, and the at-fork handler. Whatever fails leaves
 * a reason that pe_unavailable_reason() reports and preempt.available() shows.
 *
 * After fork() only the forking thread exists in the child, and every mutex may have been held
 * by a thread that is gone: the at-fork handler hands the child to each part in turn (thread
 * registry, preemptible regions, sysmon, the hub's wake-up), and each re-initialises its own
 * locks and forgets what died with the parent's threads. The Python side restarts sysmon and
 * re-registers what survived (_runtime/_fork.py).
 */
#include "pe_internal.h"

#include <pthread.h>

static pthread_once_t pe_once = PTHREAD_ONCE_INIT;
static const char *pe_reason;             /* NULL, or why async preemption is unavailable */
static int pe_init_rc = PE_UNAVAILABLE;

/* fork() child: every part's child handler. Runs in the child, single-threaded. */
static void pe_atfork_child(void)
{
    pe_thread_atfork_child();
    pe_regions_atfork_child();
    pe_sysmon_atfork_child();
    pe_wakeup_atfork_child();
}

/* One-time process setup (pthread_once). */
static void pe_init_once(void)
{
    if (pe_thread_key_init() != 0) {
        pe_reason = "pthread_key_create failed";
        return;
    }
    pe_reason = pe_cpu_probe();
    if (pe_signal_install() != 0) {
        pe_reason = "could not install the SIGURG handler";
        return;
    }
    pthread_atfork(NULL, NULL, pe_atfork_child);
    pe_init_rc = PE_OK;
}

/* Start the core. Any thread; idempotent. */
int pe_init(void)
{
    pthread_once(&pe_once, pe_init_once);
    return pe_init_rc;
}

/* NULL when async preemption can work, else why not. Any thread. */
const char *pe_unavailable_reason(void)
{
    pe_init();
    return pe_reason;
}
