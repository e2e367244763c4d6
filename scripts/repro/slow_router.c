/* Reproducer for CI25's lazy-restore hang (RELIABILITY.md, Determinism): an LD_PRELOAD
 * shim that makes the demand pager's fault router ("vmm-uffd-router") sleep 15 ms before
 * each poll, as a router starved on a loaded machine does. Not part of the suite.
 *
 *   cc -O2 -shared -fPIC -o /tmp/slow_router.so scripts/repro/slow_router.c -ldl
 *   LD_PRELOAD=/tmp/slow_router.so .build/debug/vmm restore SNAP --trust-snapshot --max-seconds 5
 *
 * SNAP: a `vmm ctl snapshot` of apfsnap.elf run with --irqchip none and the MemoryFault
 * plugin (LauncherSnapshotAPITests). Before 818eb1a, 8 of 20 lazy restores hung (status
 * 16, one memory-fault exit whose handler ran until the limit); after it, 0 of 20. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <poll.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>

int poll(struct pollfd *fds, nfds_t n, int timeout) {
    static int (*real)(struct pollfd *, nfds_t, int);
    if (!real) real = (int (*)(struct pollfd *, nfds_t, int))dlsym(RTLD_NEXT, "poll");
    char name[17] = {0};
    prctl(PR_GET_NAME, name);
    if (strcmp(name, "vmm-uffd-router") == 0) {
        struct timespec t = {0, 15000000};
        nanosleep(&t, 0);
    }
    return real(fds, n, timeout);
}
