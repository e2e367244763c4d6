#define _GNU_SOURCE
#include "cseccomp.h"

#include <errno.h>
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
    if (fd >= 0) {
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
