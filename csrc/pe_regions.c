/*
 * pe_regions.c — the address ranges where a thread may be preempted asynchronously.
 *
 * Go can preempt any instruction of Go code because its compiler vouches, per PC, that the
 * register state there can be saved and the stack scanned. We have no such compiler: the user
 * vouches for a whole shared object instead, by registering it with preempt.preemptible(lib).
 * That is sound only for code that is reentrant and holds no lock across its hot loop — the
 * goroutine parked in the middle of it must not stop others that call the same code (the
 * Python layer serialises non-reentrant libraries). What the user may not vouch for is refused
 * here: the C library and the dynamic loader (locks everywhere: malloc, stdio, dlopen), the
 * interpreter (it runs only with the GIL and keeps global state), the vDSO, the main program,
 * and this module.
 *
 * The table is written under a mutex and read by the signal handler without any lock, through a
 * sequence counter (odd while a writer is mid-update). A reader that sees an update in progress
 * or a changed counter does not spin — the writer may be the very thread the handler
 * interrupted — it answers "not preemptible", and the requester retries later.
 *
 * A region stays registered until removed (handle.close()); registering the same segment twice
 * counts references. Unloading a library while it is registered is the caller's error: the
 * Python layer keeps the library object alive for as long as the handle is open.
 */
#include "pe_internal.h"

#include <dlfcn.h>
#include <gnu/libc-version.h>
#include <link.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    _Atomic uintptr_t start; /* first byte of an executable PT_LOAD segment */
    _Atomic uintptr_t end;   /* one past its last byte; 0 while the entry is unused */
    int32_t refs;            /* registrations of this segment (writer side only) */
} pe_region_t;

static pe_region_t pe_regions[PE_MAX_REGIONS];
static _Atomic uint32_t pe_regions_seq;  /* seqlock: odd while a writer is mid-update */
static _Atomic int32_t pe_regions_hw;    /* entries [0, hw) may be in use */
static pthread_mutex_t pe_regions_mu = PTHREAD_MUTEX_INITIALIZER;

/* 1 when pc lies in a registered region; 0 otherwise or when a writer is mid-update.
 * Async-signal-safe, wait-free. */
int pe_regions_contains(uintptr_t pc)
{
    uint32_t s1 = atomic_load_explicit(&pe_regions_seq, memory_order_acquire);
    if (s1 & 1)
        return 0;
    int hit = 0;
    int32_t hw = atomic_load_explicit(&pe_regions_hw, memory_order_acquire);
    for (int32_t i = 0; i < hw && !hit; i++) {
        uintptr_t s = atomic_load_explicit(&pe_regions[i].start, memory_order_relaxed);
        uintptr_t e = atomic_load_explicit(&pe_regions[i].end, memory_order_relaxed);
        hit = pc >= s && pc < e;
    }
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&pe_regions_seq, memory_order_relaxed) != s1)
        return 0;
    return hit;
}

/* Number of live regions. Any thread. */
int pe_regions_count(void)
{
    int n = 0;
    pthread_mutex_lock(&pe_regions_mu);
    for (int32_t i = 0; i < atomic_load(&pe_regions_hw); i++)
        n += atomic_load(&pe_regions[i].end) != 0;
    pthread_mutex_unlock(&pe_regions_mu);
    return n;
}

/* Writer side of the seqlock. pe_regions_mu held. */
static void pe_regions_write_begin(void)
{
    atomic_fetch_add_explicit(&pe_regions_seq, 1, memory_order_acq_rel);
    atomic_thread_fence(memory_order_release);
}

static void pe_regions_write_end(void)
{
    atomic_fetch_add_explicit(&pe_regions_seq, 1, memory_order_release);
}

/* Add [start, end) or count one more reference to it. pe_regions_mu held. Returns the id or
 * PE_FULL. */
static int32_t pe_regions_insert(uintptr_t start, uintptr_t end)
{
    int32_t hw = atomic_load(&pe_regions_hw), free_i = -1;
    for (int32_t i = 0; i < hw; i++) {
        if (atomic_load(&pe_regions[i].end) == 0) {
            if (free_i < 0)
                free_i = i;
        } else if (atomic_load(&pe_regions[i].start) == start && atomic_load(&pe_regions[i].end) == end) {
            pe_regions[i].refs++;
            return i;
        }
    }
    if (free_i < 0) {
        if (hw == PE_MAX_REGIONS)
            return PE_FULL;
        free_i = hw;
    }
    pe_regions_write_begin();
    atomic_store_explicit(&pe_regions[free_i].start, start, memory_order_relaxed);
    atomic_store_explicit(&pe_regions[free_i].end, end, memory_order_relaxed);
    pe_regions[free_i].refs = 1;
    if (free_i == hw)
        atomic_store_explicit(&pe_regions_hw, hw + 1, memory_order_release);
    pe_regions_write_end();
    return free_i;
}

/* Drop one reference to region id. Any thread. */
int pe_regions_remove(int32_t id)
{
    if (id < 0 || id >= PE_MAX_REGIONS)
        return PE_INVALID;
    int rc = PE_OK;
    pthread_mutex_lock(&pe_regions_mu);
    if (atomic_load(&pe_regions[id].end) == 0) {
        rc = PE_INVALID;
    } else if (--pe_regions[id].refs == 0) {
        pe_regions_write_begin();
        atomic_store_explicit(&pe_regions[id].end, 0, memory_order_relaxed);
        atomic_store_explicit(&pe_regions[id].start, 0, memory_order_relaxed);
        pe_regions_write_end();
    }
    pthread_mutex_unlock(&pe_regions_mu);
    return rc;
}

/* fork() child: the mutex may have been held by a thread that no longer exists. */
PE_HIDDEN void pe_regions_atfork_child(void)
{
    pthread_mutex_init(&pe_regions_mu, NULL);
    if (atomic_load(&pe_regions_seq) & 1)
        atomic_fetch_add(&pe_regions_seq, 1);
}

/* How an object to register is named. */
typedef struct {
    uintptr_t addr;           /* an address inside it, or 0 */
    uintptr_t bias;           /* its load bias (with match_bias) */
    int match_bias;
    const char *name;         /* dlpi_name to match with the bias, or NULL */
    const char *realpath;     /* realpath to match, or NULL */
    int found;                /* out: the object was found */
    struct dl_phdr_info info; /* out: the object */
} pe_find_t;

/* 1 when addr lies in one of the object's PT_LOAD segments. */
static int pe_object_contains(const struct dl_phdr_info *info, uintptr_t addr)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t s = info->dlpi_addr + ph->p_vaddr;
        if (addr >= s && addr < s + ph->p_memsz)
            return 1;
    }
    return 0;
}

/* dl_iterate_phdr callback: stop at the object f names. Loader lock held: no dlopen here. */
static int pe_find_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    pe_find_t *f = arg;
    int match = 0;
    if (f->addr) {
        match = pe_object_contains(info, f->addr);
    } else if (f->match_bias) {
        match = info->dlpi_addr == f->bias && strcmp(info->dlpi_name ? info->dlpi_name : "", f->name) == 0;
    } else if (f->realpath && info->dlpi_name && info->dlpi_name[0]) {
        char buf[PATH_MAX];
        match = realpath(info->dlpi_name, buf) && strcmp(buf, f->realpath) == 0;
    }
    if (match) {
        f->found = 1;
        f->info = *info;
    }
    return match;
}

/* 1 when the object holds the code of fn. */
static int pe_object_has(const struct dl_phdr_info *info, void *fn)
{
    return pe_object_contains(info, (uintptr_t)fn);
}

/* Why the object may not be registered, or NULL. */
static const char *pe_object_refused(const struct dl_phdr_info *info)
{
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    if (name[0] == '\0')
        return "it is the main program (the Python interpreter)";
    if (strstr(name, "linux-vdso") || strstr(name, "linux-gate"))
        return "it is the vDSO";
    if (strstr(name, "/ld-linux") || strncmp(name, "ld-linux", 8) == 0)
        return "it is the dynamic loader";
    /* gnu_get_libc_version, not malloc or write: sanitizers interpose those. */
    if (pe_object_has(info, (void *)&gnu_get_libc_version))
        return "it is the C library (it takes locks: malloc, stdio)";
    if (pe_object_has(info, (void *)&pe_init))
        return "it is preempt's own core";
    if (pe_object_has(info, (void *)&pe_py_this_tstate))
        return "it is preempt's own core";
    return NULL;
}

/* Register every executable PT_LOAD segment of the object found. */
static int pe_regions_add_found(pe_find_t *f, int32_t *ids, int max, char *err, size_t errlen)
{
    const char *why = pe_object_refused(&f->info);
    if (!why && pe_python_object_refused(&f->info))
        why = "it is the Python interpreter's library";
    if (why) {
        snprintf(err, errlen, "cannot register '%s': %s", f->info.dlpi_name, why);
        return PE_INVALID;
    }
    int n = 0;
    pthread_mutex_lock(&pe_regions_mu);
    for (int i = 0; i < f->info.dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &f->info.dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        if (n == max) {
            pthread_mutex_unlock(&pe_regions_mu);
            snprintf(err, errlen, "'%s' has more than %d executable segments", f->info.dlpi_name, max);
            for (int k = 0; k < n; k++)
                pe_regions_remove(ids[k]);
            return PE_INVALID;
        }
        uintptr_t s = f->info.dlpi_addr + ph->p_vaddr;
        int32_t id = pe_regions_insert(s, s + ph->p_memsz);
        if (id < 0) {
            pthread_mutex_unlock(&pe_regions_mu);
            for (int k = 0; k < n; k++)
                pe_regions_remove(ids[k]);
            snprintf(err, errlen, "the region table is full (%d regions)", PE_MAX_REGIONS);
            return PE_FULL;
        }
        ids[n++] = id;
    }
    pthread_mutex_unlock(&pe_regions_mu);
    if (n == 0) {
        snprintf(err, errlen, "'%s' has no executable segment", f->info.dlpi_name);
        return PE_INVALID;
    }
    return n;
}

/* By dlopen handle (ctypes.CDLL._handle). Any thread. */
int pe_regions_add_handle(void *dl_handle, int32_t *ids, int max, char *err, size_t errlen)
{
    struct link_map *lm = NULL;
    if (!dl_handle || dlinfo(dl_handle, RTLD_DI_LINKMAP, &lm) != 0 || !lm) {
        snprintf(err, errlen, "not a loaded library handle");
        return PE_INVALID;
    }
    pe_find_t f = {.bias = lm->l_addr, .match_bias = 1, .name = lm->l_name ? lm->l_name : ""};
    dl_iterate_phdr(pe_find_cb, &f);
    if (!f.found) {
        snprintf(err, errlen, "library '%s' is not in the loaded-object list", f.name);
        return PE_INVALID;
    }
    return pe_regions_add_found(&f, ids, max, err, errlen);
}

/* By an address inside the object (a cffi function pointer). Any thread. */
int pe_regions_add_address(uintptr_t addr, int32_t *ids, int max, char *err, size_t errlen)
{
    pe_find_t f = {.addr = addr};
    if (addr)
        dl_iterate_phdr(pe_find_cb, &f);
    if (!f.found) {
        snprintf(err, errlen, "address %#lx is in no loaded object", (unsigned long)addr);
        return PE_INVALID;
    }
    return pe_regions_add_found(&f, ids, max, err, errlen);
}

/* By file path of an already loaded object. Any thread. */
int pe_regions_add_path(const char *path, int32_t *ids, int max, char *err, size_t errlen)
{
    char real[PATH_MAX];
    if (!realpath(path, real)) {
        snprintf(err, errlen, "'%s' does not exist", path);
        return PE_INVALID;
    }
    pe_find_t f = {.realpath = real};
    dl_iterate_phdr(pe_find_cb, &f);
    if (!f.found) {
        snprintf(err, errlen, "'%s' is not loaded in this process (load it first, e.g. with ctypes.CDLL)", path);
        return PE_INVALID;
    }
    return pe_regions_add_found(&f, ids, max, err, errlen);
}
