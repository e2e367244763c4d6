/*
 * cseccomp.h - seccomp-bpf for VMMKit's vCPU threads, as Swift can call it.
 *
 * Swift cannot call the variadic prctl(2)/syscall(2), nor write a SIGSYS handler
 * that edits the interrupted context portably, so this is C: install an allow-list
 * filter on the calling thread (no TSYNC: other threads keep theirs), the SIGSYS
 * handler that refuses and reports what the filter traps, and the syscall name table
 * (x86_64). The policy (which calls) lives in Swift (Threads/Seccomp*.swift).
 */
#ifndef CSECCOMP_H
#define CSECCOMP_H

#include <stddef.h>
#include <stdint.h>

/* What the filter does with a call outside the list. */
enum cseccomp_action {
    CSECCOMP_TRAP = 0,  /* SIGSYS: the handler below makes it return -EPERM and reports it */
    CSECCOMP_ERRNO = 1, /* returns -EPERM silently (SECCOMP_RET_ERRNO) */
};

/* Installs on the calling thread: prctl(PR_SET_NO_NEW_PRIVS) and a filter allowing
 * exactly nrs[0..count) (x86_64 ABI; any other architecture or the x32 ABI is
 * refused too). vcpu_id names the thread in reports. 0 or -errno. Irreversible for
 * the thread. */
int cseccomp_install(const uint32_t *nrs, size_t count, int action, int32_t vcpu_id);

/* Installs the process's SIGSYS handler (idempotent). report_fd: where the one-line
 * report of each refused call goes (-1: nowhere). */
void cseccomp_install_handler(int report_fd);

/* Installs, once per process, the handler of the fatal signals (QUIT, ILL, TRAP, ABRT,
 * BUS, FPE, SEGV) that ends the process by the signal when it hits a filtered thread,
 * with one line on the report fd naming the vCPU and the signal; the handler installed
 * before it still runs first unless it is the Swift runtime's crash reporter (which
 * cannot run under the filter). Other threads see the previous handlers unchanged.
 * Idempotent; SeccompPolicy.install calls it before each filter. */
void cseccomp_install_fatal_guard(void);
/* Refused calls so far, process-wide, and the last 64 of them (index < 64 back from
 * the newest: 0 is the newest). 0 if index is out of range, else 1. */
uint64_t cseccomp_refused_count(void);
int cseccomp_refused(uint64_t index, int32_t *nr, int32_t *vcpu_id, int32_t *tid);

/* The syscall number of name, or -1; the name of nr, or NULL (names this table knows). */
int32_t cseccomp_number(const char *name);
const char *cseccomp_name(int32_t nr);

#endif /* CSECCOMP_H */
