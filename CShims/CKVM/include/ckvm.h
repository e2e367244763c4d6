/*
 * ckvm.h - the raw KVM ABI, as Swift can import it.
 *
 * Swift cannot import function-like macros such as _IOW(), nor call the variadic
 * ioctl(2), so this header turns request numbers into constants and the ioctl into
 * three typed wrappers. It holds no logic. Everything newer than the 6.1 uapi
 * headers Debian ships is defined here under #ifndef guards, with the layout checked
 * by _Static_assert against the upstream values (include/uapi/linux/kvm.h).
 */
#ifndef CKVM_H
#define CKVM_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/memfd.h>
#include <linux/kvm.h>

/* ---- ioctl wrappers: return -1 and leave errno set, like ioctl(2) ---------- */
static inline int ckvm_ioctl(int fd, unsigned long request, void *arg) {
    return ioctl(fd, request, arg);
}
static inline int ckvm_ioctl_value(int fd, unsigned long request, unsigned long value) {
    return ioctl(fd, request, value);
}
static inline int ckvm_errno(void) { return errno; }
/* KVM_RUN on the vCPU fd that `fd_cell` points to, as a function the run loop can call
 * through a pointer (VCPUEntryFunction): KVMBackend's entry, the same call a backend
 * written in C (a benchmark's stand-in kernel) is entered with. */
int ckvm_run_entry(void *fd_cell);
/* immediate_exit is written by the vCPU thread and by whoever kicks it, and read by the
 * kernel at KVM_RUN entry: stored atomically (relaxed; the kick signal and KVM_RUN order
 * the rest), so it is no data race for the compiler or ThreadSanitizer. */
static inline void ckvm_set_immediate_exit(struct kvm_run *run, uint8_t value) {
    __atomic_store_n(&run->immediate_exit, value, __ATOMIC_RELAXED);
}
/* memfd_create(2) without _GNU_SOURCE. */
static inline int ckvm_memfd_create(const char *name, unsigned int flags) {
    return (int)syscall(SYS_memfd_create, name, flags);
}

/* dup3(2) without _GNU_SOURCE: puts a placeholder over a closed vCPU's fd number. */
static inline int ckvm_dup3(int oldfd, int newfd, int flags) {
    return (int)syscall(SYS_dup3, oldfd, newfd, flags);
}

/* ---- Constants newer than the 6.1 headers ----------------------------------- */
#ifndef KVM_EXIT_MEMORY_FAULT
#define KVM_EXIT_MEMORY_FAULT 39
#endif
#ifndef KVM_MEMORY_EXIT_FLAG_PRIVATE
#define KVM_MEMORY_EXIT_FLAG_PRIVATE (1ULL << 3)
#endif
#ifndef KVM_CAP_USER_MEMORY2
#define KVM_CAP_USER_MEMORY2 231
#endif
#ifndef KVM_CAP_MEMORY_FAULT_INFO
#define KVM_CAP_MEMORY_FAULT_INFO 232
#endif
#ifndef KVM_CAP_MEMORY_ATTRIBUTES
#define KVM_CAP_MEMORY_ATTRIBUTES 233
#endif
#ifndef KVM_CAP_GUEST_MEMFD
#define KVM_CAP_GUEST_MEMFD 234
#endif
#ifndef KVM_CAP_VM_TYPES
#define KVM_CAP_VM_TYPES 235
#endif
#ifndef KVM_MEM_GUEST_MEMFD
#define KVM_MEM_GUEST_MEMFD (1U << 2)
#endif
#ifndef GUEST_MEMFD_FLAG_MMAP
#define GUEST_MEMFD_FLAG_MMAP (1ULL << 0)
#endif
#ifndef GUEST_MEMFD_FLAG_INIT_SHARED
#define GUEST_MEMFD_FLAG_INIT_SHARED (1ULL << 1)
#endif

/* The memory_fault member of kvm_run's exit union (upstream 6.8+). The 6.1 struct
 * has no such member, so it is an overlay on the union's first bytes. */
struct ckvm_memory_fault {
    __u64 flags;
    __u64 gpa;
    __u64 size;
};

#ifndef KVM_SET_USER_MEMORY_REGION2
struct kvm_userspace_memory_region2 {
    __u32 slot;
    __u32 flags;
    __u64 guest_phys_addr;
    __u64 memory_size;
    __u64 userspace_addr;
    __u64 guest_memfd_offset;
    __u32 guest_memfd;
    __u32 pad1;
    __u64 pad2[14];
};
#define KVM_SET_USER_MEMORY_REGION2 _IOW(KVMIO, 0x49, struct kvm_userspace_memory_region2)
#endif

#ifndef KVM_CREATE_GUEST_MEMFD
struct kvm_create_guest_memfd {
    __u64 size;
    __u64 flags;
    __u64 reserved[6];
};
#define KVM_CREATE_GUEST_MEMFD _IOWR(KVMIO, 0xd4, struct kvm_create_guest_memfd)
#endif

/* ---- Layout checks against upstream ----------------------------------------- */
_Static_assert(offsetof(struct kvm_run, request_interrupt_window) == 0, "kvm_run layout");
_Static_assert(offsetof(struct kvm_run, immediate_exit) == 1, "kvm_run layout");
_Static_assert(offsetof(struct kvm_run, exit_reason) == 8, "kvm_run layout");
_Static_assert(offsetof(struct kvm_run, ready_for_interrupt_injection) == 12, "kvm_run layout");
_Static_assert(offsetof(struct kvm_run, if_flag) == 13, "kvm_run layout");
_Static_assert(offsetof(struct kvm_run, cr8) == 16, "kvm_run layout");
_Static_assert(offsetof(struct kvm_run, apic_base) == 24, "kvm_run layout");
_Static_assert(offsetof(struct kvm_run, hw) == 32, "exit union starts at 32");
_Static_assert(offsetof(struct kvm_run, io) == 32, "io in the exit union");
_Static_assert(offsetof(struct kvm_run, mmio.phys_addr) == 32, "mmio layout");
_Static_assert(offsetof(struct kvm_run, mmio.data) == 40, "mmio.data overlaps memory_fault.gpa");
_Static_assert(offsetof(struct kvm_run, mmio.len) == 48, "mmio.len overlaps memory_fault.size");
_Static_assert(offsetof(struct kvm_run, kvm_valid_regs) == 288, "kvm_run layout");
_Static_assert(offsetof(struct kvm_run, kvm_dirty_regs) == 296, "kvm_run layout");
_Static_assert(offsetof(struct kvm_run, s) == 304, "kvm_run layout");
_Static_assert(sizeof(struct ckvm_memory_fault) == 24, "memory_fault size");
_Static_assert(offsetof(struct kvm_userspace_memory_region2, guest_memfd_offset) == 32, "region2 layout");
_Static_assert(offsetof(struct kvm_userspace_memory_region2, guest_memfd) == 40, "region2 layout");
_Static_assert(sizeof(struct kvm_userspace_memory_region2) == 160, "region2 size");
_Static_assert(sizeof(struct kvm_create_guest_memfd) == 64, "create_guest_memfd size");
_Static_assert(sizeof(struct kvm_regs) == 144, "kvm_regs size");
_Static_assert(sizeof(struct kvm_sregs) == 312, "kvm_sregs size");
_Static_assert(sizeof(struct kvm_vcpu_events) == 64, "kvm_vcpu_events size");

/* Byte offsets the core pokes directly (the canary, completions). */
enum {
    CKVM_RUN_EXIT_REASON_OFFSET = offsetof(struct kvm_run, exit_reason),
    CKVM_RUN_IMMEDIATE_EXIT_OFFSET = offsetof(struct kvm_run, immediate_exit),
    CKVM_RUN_EXIT_UNION_OFFSET = offsetof(struct kvm_run, hw),
    CKVM_RUN_MEMORY_FAULT_OFFSET = offsetof(struct kvm_run, hw),
};

static inline struct ckvm_memory_fault *ckvm_run_memory_fault(struct kvm_run *run) {
    return (struct ckvm_memory_fault *)(void *)&run->hw;
}

/* ---- Request numbers (Swift cannot expand _IO* macros) ---------------------- */
static const unsigned long CKVM_GET_API_VERSION = KVM_GET_API_VERSION;
static const unsigned long CKVM_CREATE_VM = KVM_CREATE_VM;
static const unsigned long CKVM_CHECK_EXTENSION = KVM_CHECK_EXTENSION;
static const unsigned long CKVM_GET_VCPU_MMAP_SIZE = KVM_GET_VCPU_MMAP_SIZE;
static const unsigned long CKVM_GET_SUPPORTED_CPUID = KVM_GET_SUPPORTED_CPUID;
static const unsigned long CKVM_CREATE_VCPU = KVM_CREATE_VCPU;
static const unsigned long CKVM_SET_USER_MEMORY_REGION = KVM_SET_USER_MEMORY_REGION;
static const unsigned long CKVM_SET_USER_MEMORY_REGION2 = KVM_SET_USER_MEMORY_REGION2;
static const unsigned long CKVM_CREATE_GUEST_MEMFD = KVM_CREATE_GUEST_MEMFD;
static const unsigned long CKVM_GET_DIRTY_LOG = KVM_GET_DIRTY_LOG;
static const unsigned long CKVM_ENABLE_CAP = KVM_ENABLE_CAP;
static const unsigned long CKVM_CREATE_IRQCHIP = KVM_CREATE_IRQCHIP;
static const unsigned long CKVM_CREATE_PIT2 = KVM_CREATE_PIT2;
static const unsigned long CKVM_IRQ_LINE = KVM_IRQ_LINE;
static const unsigned long CKVM_SET_GSI_ROUTING = KVM_SET_GSI_ROUTING;
static const unsigned long CKVM_SIGNAL_MSI = KVM_SIGNAL_MSI;
static const unsigned long CKVM_IRQFD = KVM_IRQFD;
static const unsigned long CKVM_IOEVENTFD = KVM_IOEVENTFD;
static const unsigned long CKVM_REGISTER_COALESCED_MMIO = KVM_REGISTER_COALESCED_MMIO;
static const unsigned long CKVM_UNREGISTER_COALESCED_MMIO = KVM_UNREGISTER_COALESCED_MMIO;
static const unsigned long CKVM_SET_TSS_ADDR = KVM_SET_TSS_ADDR;
static const unsigned long CKVM_SET_IDENTITY_MAP_ADDR = KVM_SET_IDENTITY_MAP_ADDR;
static const unsigned long CKVM_X86_SET_MSR_FILTER = KVM_X86_SET_MSR_FILTER;
static const unsigned long CKVM_RUN = KVM_RUN;
static const unsigned long CKVM_GET_REGS = KVM_GET_REGS;
static const unsigned long CKVM_SET_REGS = KVM_SET_REGS;
static const unsigned long CKVM_GET_SREGS = KVM_GET_SREGS;
static const unsigned long CKVM_SET_SREGS = KVM_SET_SREGS;
static const unsigned long CKVM_GET_FPU = KVM_GET_FPU;
static const unsigned long CKVM_SET_FPU = KVM_SET_FPU;
static const unsigned long CKVM_GET_MSRS = KVM_GET_MSRS;
static const unsigned long CKVM_SET_MSRS = KVM_SET_MSRS;
static const unsigned long CKVM_SET_CPUID2 = KVM_SET_CPUID2;
static const unsigned long CKVM_GET_CPUID2 = KVM_GET_CPUID2;
static const unsigned long CKVM_GET_VCPU_EVENTS = KVM_GET_VCPU_EVENTS;
static const unsigned long CKVM_SET_VCPU_EVENTS = KVM_SET_VCPU_EVENTS;
static const unsigned long CKVM_GET_MP_STATE = KVM_GET_MP_STATE;
static const unsigned long CKVM_SET_MP_STATE = KVM_SET_MP_STATE;
static const unsigned long CKVM_SET_GUEST_DEBUG = KVM_SET_GUEST_DEBUG;
static const unsigned long CKVM_TRANSLATE = KVM_TRANSLATE;
static const unsigned long CKVM_INTERRUPT = KVM_INTERRUPT;
static const unsigned long CKVM_NMI = KVM_NMI;
static const unsigned long CKVM_GET_LAPIC = KVM_GET_LAPIC;
static const unsigned long CKVM_SET_LAPIC = KVM_SET_LAPIC;

/* ---- Variable-length structs, sized for Swift --------------------------------
 * kvm_cpuid2, kvm_msrs and kvm_msr_filter end in flexible arrays, which Swift cannot
 * allocate. These fixed-capacity twins have the same header layout. */
#define CKVM_MAX_CPUID_ENTRIES 256
struct ckvm_cpuid {
    __u32 nent;
    __u32 padding;
    struct kvm_cpuid_entry2 entries[CKVM_MAX_CPUID_ENTRIES];
};
_Static_assert(offsetof(struct ckvm_cpuid, entries) == offsetof(struct kvm_cpuid2, entries), "cpuid twin");

#define CKVM_MAX_MSR_ENTRIES 64
struct ckvm_msrs {
    __u32 nmsrs;
    __u32 pad;
    struct kvm_msr_entry entries[CKVM_MAX_MSR_ENTRIES];
};
_Static_assert(offsetof(struct ckvm_msrs, entries) == offsetof(struct kvm_msrs, entries), "msrs twin");

/* kvm_irq_routing ends in a flexible array: a twin with room for a PC's 24 GSIs and
 * more. The 6.1 headers have the ABI (KVM_CAP_IRQ_ROUTING is from 2.6.30); its layout
 * is checked here all the same, since the core writes the union's irqchip half. */
#define CKVM_MAX_GSI_ROUTES 64
struct ckvm_irq_routing {
    __u32 nr;
    __u32 flags;
    struct kvm_irq_routing_entry entries[CKVM_MAX_GSI_ROUTES];
};
_Static_assert(KVM_IRQ_ROUTING_IRQCHIP == 1, "routing entry type");
_Static_assert(KVM_IRQCHIP_PIC_MASTER == 0 && KVM_IRQCHIP_PIC_SLAVE == 1 && KVM_IRQCHIP_IOAPIC == 2, "irqchip ids");
_Static_assert(sizeof(struct kvm_irq_routing_entry) == 48, "routing entry size");
_Static_assert(offsetof(struct kvm_irq_routing_entry, type) == 4, "routing entry layout");
_Static_assert(offsetof(struct kvm_irq_routing_entry, u) == 16, "routing entry layout");
_Static_assert(offsetof(struct kvm_irq_routing_entry, u.irqchip.pin) == 20, "routing entry layout");
_Static_assert(offsetof(struct ckvm_irq_routing, entries) == offsetof(struct kvm_irq_routing, entries), "routing twin");
_Static_assert(offsetof(struct kvm_irq_routing, entries) == 8, "routing header size");

/* The rest of the ABI, by concern. Listed here so that a build cache that has seen
 * this header notices when one of them changes or a new one is added. */
#include "ckvm_async_pf.h"
#include "ckvm_fastpath.h"
#include "ckvm_snapshot.h"

#endif /* CKVM_H */
