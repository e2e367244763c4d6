/* The "direct C call" baseline of the plugin dispatch benchmark. */
#ifndef CPLUGIN_BENCH_H
#define CPLUGIN_BENCH_H
#include <stdint.h>
#include "vmm_plugin.h"

/* Calls the null plugin's handler logic n times through a function pointer the
 * compiler cannot see through, filling the record as the host does for an IN of one
 * byte. Returns the number of HANDLED verdicts. */
uint64_t cplugin_bench_direct(uint64_t n, vmm_exit_t *record, uint8_t *data);


/* The user-space path benchmark (UserPathBench.swift): a C loop over a prepared exit
 * record, with no kernel entry. Shapes: */
enum { USER_PATH_PIO_OUT, USER_PATH_PIO_IN, USER_PATH_MMIO_READ, USER_PATH_MMIO_WRITE, USER_PATH_HLT };
#define USER_PATH_PAGE_SIZE (3 * 4096)
/* Fills a kvm_run-sized page with one exit of `shape` (port, or an address in the
 * 4 KiB MMIO page at `mmio`). */
void user_path_prepare(void *page, int shape, uint16_t port, uint64_t mmio);
/* The exit_reason of `shape`. */
uint32_t user_path_reason(int shape);
/* Runs n exits of the prepared page through decode, dispatch and completion; returns
 * how many were handled (n, or 0 if the record was refused). */
uint64_t user_path_c_loop(void *page, uint32_t reason, uint64_t n, uint16_t port, uint64_t mmio,
                          vmm_exit_t *record, uint8_t *scratch);

/* The Swift loop's "kernel" (PreparedExitBackend's VCPUEntryFunction), entered the way
 * the core enters KVM_RUN: a C call through a pointer. Each entry writes exit_reason of
 * the record prepared at the run's first entry (the canary may have poisoned it
 * before); after the run's last exit, a triple fault (KVM_EXIT_SHUTDOWN). */
typedef struct user_path_kernel {
    int64_t left;       /* exits left once the run has started, less one */
    uint64_t unstarted; /* the run's count, before its first entry */
    void *run;
    uint64_t mmio;
    uint32_t reason;
    int32_t shape;
    uint16_t port;
} user_path_kernel_t;
int user_path_kernel_enter(void *kernel);

/* The start-up benchmark's baseline for the teardown (StartupBench.swift): a VM with
 * an in-kernel irqchip, one vCPU and (with_pit) the PIT, whose fd is the last one
 * holding it (closing it destroys the VM); -1 if one was not made. */
int vm_teardown_prepare(int with_pit);
#endif
