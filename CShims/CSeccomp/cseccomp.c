#define _GNU_SOURCE
#include "cseccomp.h"

#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

_Static_assert(sizeof(struct sock_filter) == 8, "sock_filter layout");
_Static_assert(offsetof(struct seccomp_data, nr) == 0, "seccomp_data.nr");
_Static_assert(offsetof(struct seccomp_data, arch) == 4, "seccomp_data.arch");

static __thread int32_t thread_vcpu = -1;

int cseccomp_install(const uint32_t *nrs, size_t count, int action, int32_t vcpu_id)
{
    if (count > 250) /* a BPF conditional jump reaches at most 255 instructions ahead */
        return -E2BIG;
    /* arch load, check and kill (3), nr load (1), one compare per call, deny, allow. */
    size_t len = 4 + count + 2;
    struct sock_filter *prog = calloc(len, sizeof *prog);
    if (!prog)
        return -ENOMEM;
    size_t i = 0;
    prog[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    prog[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
    prog[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    prog[i++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
    /* Instruction k compares with nrs[k]; on a match jump to the ALLOW at the end. */
    for (size_t k = 0; k < count; k++) {
        uint8_t to_allow = (uint8_t)(count - k); /* skip the remaining compares and the deny */
        prog[i++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nrs[k], to_allow, 0);
    }
    uint32_t deny = action == CSECCOMP_ERRNO ? (SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)) : SECCOMP_RET_TRAP;
    prog[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, deny);
    prog[i++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    if (i != len) { free(prog); return -EINVAL; }
    struct sock_fprog fprog = { .len = (unsigned short)i, .filter = prog };
    int rc = 0;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        rc = -errno;
    else if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) != 0)
        rc = -errno;
    free(prog);
    if (rc == 0)
        thread_vcpu = vcpu_id;
    return rc;
}

#define RING 64
static atomic_uint_fast64_t refused_total;
static _Atomic int64_t ring[RING]; /* nr | vcpu << 20 | tid << 36, written by the handler */
static atomic_int report_fd = -1;
/* Lines written one per refusal; after them one line says the rest are only counted. A
 * plugin retrying a refused call in a loop wrote 100,000 lines (11 MB) a second. */
#define REPORTED_LINES 16

static size_t put_dec(char *p, int64_t v)
{
    char tmp[24];
    size_t n = 0, out = 0;
    if (v < 0) { p[out++] = '-'; v = -v; }
    do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) p[out++] = tmp[--n];
    return out;
}

static size_t put_str(char *p, const char *s)
{
    size_t n = strlen(s);
    memcpy(p, s, n);
    return n;
}

static void on_sigsys(int sig, siginfo_t *info, void *context)
{
    (void)sig;
    int saved = errno;
    ucontext_t *uc = context;
    int32_t nr = info->si_syscall;
    int32_t tid = (int32_t)syscall(SYS_gettid);
    uc->uc_mcontext.gregs[REG_RAX] = -EPERM; /* the call returns -EPERM */
    uint64_t index = atomic_fetch_add(&refused_total, 1);
    atomic_store(&ring[index % RING], (int64_t)(uint32_t)nr | ((int64_t)(uint16_t)thread_vcpu << 20) | ((int64_t)(uint32_t)tid << 36));
    int fd = atomic_load(&report_fd);
    if (fd >= 0 && index == REPORTED_LINES) {
        static const char more[] = "vmm: seccomp: more system calls refused: not reported one by one after "
            "16 (Seccomp.refusedCount counts them all)\n";
        ssize_t w = write(fd, more, sizeof more - 1);
        (void)w;
    }
    if (fd >= 0 && index < REPORTED_LINES) {
        char line[200];
        size_t n = put_str(line, "vmm: seccomp: ");
        if (thread_vcpu >= 0) {
            n += put_str(line + n, "vCPU ");
            n += put_dec(line + n, thread_vcpu);
        } else {
            n += put_str(line + n, "thread ");
            n += put_dec(line + n, tid);
        }
        n += put_str(line + n, " made system call ");
        n += put_dec(line + n, nr);
        const char *name = cseccomp_name(nr);
        if (name) {
            n += put_str(line + n, " (");
            n += put_str(line + n, name);
            n += put_str(line + n, ")");
        }
        n += put_str(line + n, ", outside its allow-list: refused with EPERM (see Docs/Seccomp.md)\n");
        ssize_t w = write(fd, line, n);
        (void)w;
    }
    errno = saved;
}

void cseccomp_install_handler(int fd)
{
    static atomic_int installed;
    atomic_store(&report_fd, fd);
    if (atomic_exchange(&installed, 1))
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSYS, &sa, NULL);
}

/* ---- Fatal signals on filtered threads ----
 * A fault (a plugin's divide by zero, a Swift trap, a bad pointer) on a filtered vCPU
 * thread must end the process by its signal. The Swift runtime's crash reporter cannot
 * run there (it spawns a process: the filter traps clone/execve while SIGSYS is blocked,
 * and the process dies of SIGSYS instead), so on those threads this handler writes one
 * line, lets the handler that was installed before it (e.g. the UART's terminal
 * restore) run unless that is the Swift runtime's, then ends the process by the signal
 * with its default action. Other threads keep the previous handler (the reporter). */
static const int fatal_signals[] = { SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE, SIGSEGV };
static struct sigaction next_action[65];
static int next_is_swift_runtime[65];

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGQUIT: return "SIGQUIT";
    case SIGILL: return "SIGILL";
    case SIGTRAP: return "SIGTRAP";
    case SIGABRT: return "SIGABRT";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGSEGV: return "SIGSEGV";
    default: return "a fatal signal";
    }
}

static size_t put_hex(char *p, uint64_t v)
{
    char tmp[16];
    size_t n = 0, out = 0;
    do { tmp[n++] = "0123456789abcdef"[v & 15]; v >>= 4; } while (v);
    p[out++] = '0'; p[out++] = 'x';
    while (n) p[out++] = tmp[--n];
    return out;
}

/* The si_code of a synchronous fault, in words (the common ones). */
static const char *fault_description(int sig, int code)
{
    switch (sig) {
    case SIGFPE:
        return code == FPE_INTDIV ? "integer divide by zero" : code == FPE_INTOVF ? "integer overflow" : "arithmetic exception";
    case SIGILL:
        return code == ILL_ILLOPC ? "illegal opcode" : code == ILL_ILLOPN ? "illegal operand" : "illegal instruction";
    case SIGSEGV:
        return code == SEGV_MAPERR ? "address not mapped" : code == SEGV_ACCERR ? "access not permitted" : "segmentation fault";
    case SIGBUS:
        return code == BUS_ADRERR ? "no memory behind the address" : "bus error";
    case SIGTRAP:
        return "trap";
    default:
        return NULL;
    }
}

static int is_fault(int sig)
{
    return sig == SIGILL || sig == SIGTRAP || sig == SIGBUS || sig == SIGFPE || sig == SIGSEGV;
}

static void on_fatal(int sig, siginfo_t *info, void *context)
{
    int synchronous = info && info->si_code > 0 && is_fault(sig);
    if (thread_vcpu < 0) {
        /* Not a filtered thread: as if this handler were not there. A fault re-runs the
         * instruction into the previous handler; a sent signal is sent again. */
        sigaction(sig, &next_action[sig], NULL);
        if (!synchronous)
            raise(sig);
        return;
    }
    int saved = errno;
    int fd = atomic_load(&report_fd);
    if (fd < 0)
        fd = 2;
    char line[320];
    size_t n = put_str(line, "vmm: vCPU ");
    n += put_dec(line + n, thread_vcpu);
    n += put_str(line + n, ": fatal signal ");
    n += put_str(line + n, signal_name(sig));
    if (synchronous) {
        ucontext_t *uc = context;
        const char *what = fault_description(sig, info->si_code);
        if (what) {
            n += put_str(line + n, " (");
            n += put_str(line + n, what);
            n += put_str(line + n, ")");
        }
        n += put_str(line + n, " at pc ");
        n += put_hex(line + n, uc ? (uint64_t)uc->uc_mcontext.gregs[REG_RIP] : 0);
        if (sig == SIGSEGV || sig == SIGBUS) {
            n += put_str(line + n, ", address ");
            n += put_hex(line + n, (uint64_t)(uintptr_t)info->si_addr);
        }
    } else if (info) {
        n += put_str(line + n, " sent by process ");
        n += put_dec(line + n, info->si_pid);
    }
    n += put_str(line + n, " on its thread: the process ends by it (no crash report under seccomp; see Docs/Seccomp.md)\n");
    ssize_t w = write(fd, line, n);
    (void)w;
    struct sigaction *next = &next_action[sig];
    int handler = (next->sa_flags & SA_SIGINFO) ? next->sa_sigaction != NULL
                                                 : (next->sa_handler != SIG_DFL && next->sa_handler != SIG_IGN);
    if (handler && !next_is_swift_runtime[sig]) {
        /* E.g. the UART's terminal restore; it may re-install its own previous action
         * and raise: the signal is blocked here, so that waits for our return. */
        if (next->sa_flags & SA_SIGINFO)
            next->sa_sigaction(sig, info, context);
        else
            next->sa_handler(sig);
    }
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, NULL);
    raise(sig); /* pending until this handler returns, then the default action */
    errno = saved;
}

struct code_query {
    uintptr_t address;
    int in_swift_runtime;
};

/* dl_iterate_phdr callback: whether q->address lies in a loaded segment of libswiftCore. */
static int find_in_swift_runtime(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct code_query *q = data;
    if (!info->dlpi_name || !strstr(info->dlpi_name, "libswiftCore"))
        return 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = (uintptr_t)info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && q->address >= start && q->address - start < ph->p_memsz) {
            q->in_swift_runtime = 1;
            return 1;
        }
    }
    return 0;
}

/* Whether a handler is the Swift runtime's. Not dladdr: that scans the symbol table of
 * the object it finds, and for libswiftCore's six handlers it cost ~3.4 million
 * instructions, a third of a trivial `vmm run` (callgrind); the segment ranges of the
 * loaded objects answer the same question in a few thousand. */
static int is_swift_runtime(void *fn)
{
    if (!fn || fn == (void *)SIG_DFL || fn == (void *)SIG_IGN)
        return 0;
    struct code_query q = {(uintptr_t)fn, 0};
    dl_iterate_phdr(find_in_swift_runtime, &q);
    return q.in_swift_runtime;
}

static void install_fatal_guard(void)
{
    for (size_t i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++) {
        int sig = fatal_signals[i];
        struct sigaction old;
        if (sigaction(sig, NULL, &old) != 0 || ((old.sa_flags & SA_SIGINFO) == 0 && old.sa_handler == SIG_IGN))
            continue; /* an ignored signal stays ignored */
        void *fn = (old.sa_flags & SA_SIGINFO) ? (void *)old.sa_sigaction : (void *)old.sa_handler;
        next_is_swift_runtime[sig] = is_swift_runtime(fn);
        next_action[sig] = old;
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_fatal;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        sigaction(sig, &sa, NULL);
    }
}

void cseccomp_install_fatal_guard(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, install_fatal_guard);
}

uint64_t cseccomp_refused_count(void) { return atomic_load(&refused_total); }

int cseccomp_refused(uint64_t index, int32_t *nr, int32_t *vcpu_id, int32_t *tid)
{
    uint64_t total = atomic_load(&refused_total);
    if (index >= total || index >= RING)
        return 0;
    int64_t v = atomic_load(&ring[(total - 1 - index) % RING]);
    *nr = (int32_t)(v & 0xfffff);
    int32_t vcpu = (int32_t)((v >> 20) & 0xffff);
    *vcpu_id = vcpu == 0xffff ? -1 : vcpu;
    *tid = (int32_t)((uint64_t)v >> 36);
    return 1;
}

#define NAMES(X) \
    X(read) X(write) X(open) X(close) X(stat) X(fstat) X(lstat) X(poll) X(lseek) X(mmap) \
    X(mprotect) X(munmap) X(brk) X(rt_sigaction) X(rt_sigprocmask) X(rt_sigreturn) X(ioctl) \
    X(pread64) X(pwrite64) X(readv) X(writev) X(access) X(pipe) X(select) X(sched_yield) \
    X(mremap) X(msync) X(mincore) X(madvise) X(dup) X(dup2) X(pause) X(nanosleep) X(getitimer) \
    X(alarm) X(setitimer) X(getpid) X(sendfile) X(socket) X(connect) X(accept) X(sendto) \
    X(recvfrom) X(sendmsg) X(recvmsg) X(shutdown) X(bind) X(listen) X(socketpair) X(clone) \
    X(fork) X(vfork) X(execve) X(exit) X(wait4) X(kill) X(uname) X(fcntl) X(flock) X(fsync) \
    X(fdatasync) X(truncate) X(ftruncate) X(getdents) X(getcwd) X(chdir) X(rename) X(mkdir) \
    X(rmdir) X(creat) X(link) X(unlink) X(symlink) X(readlink) X(chmod) X(chown) X(umask) \
    X(gettimeofday) X(getrlimit) X(getrusage) X(sysinfo) X(times) X(ptrace) X(getuid) X(getgid) \
    X(setuid) X(setgid) X(geteuid) X(getegid) X(getppid) X(setsid) X(sigaltstack) X(prctl) \
    X(arch_prctl) X(mount) X(gettid) X(tkill) X(futex) X(sched_getaffinity) X(getdents64) \
    X(set_tid_address) X(restart_syscall) X(clock_gettime) X(clock_getres) X(clock_nanosleep) \
    X(exit_group) X(epoll_wait) X(epoll_ctl) X(tgkill) X(openat) X(newfstatat) X(ppoll) \
    X(set_robust_list) X(get_robust_list) X(epoll_pwait) X(eventfd2) X(epoll_create1) X(pipe2) \
    X(prlimit64) X(getrandom) X(memfd_create) X(userfaultfd) X(membarrier) X(rseq) X(statx) \
    X(clone3) X(seccomp) X(process_vm_readv) X(process_vm_writev) X(pidfd_open) X(io_uring_setup)

#define ENTRY(n) { #n, __NR_##n },
static const struct { const char *name; int32_t nr; } names[] = { NAMES(ENTRY) };

int32_t cseccomp_number(const char *name)
{
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(names[i].name, name) == 0)
            return names[i].nr;
    return -1;
}

const char *cseccomp_name(int32_t nr)
{
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].nr == nr)
            return names[i].name;
    return NULL;
}
