/*
 * vmm_plugin.h - the stable C ABI between a VMMKit host and its exit-handler plugins.
 *
 * A plugin is a shared library built against this header alone. It exports one
 * const data symbol, `vmm_plugin_entry` (a vmm_plugin_entry_t), which the host finds
 * with dlsym() and validates before running any plugin code. The host then calls
 * init() with a table of host services (vmm_host_t); the plugin registers handlers for
 * exit classes and address ranges; each handler receives a vmm_exit_t record per exit
 * and returns a verdict. Optional features on either side are "extensions" looked up
 * by a versioned string id ("org.vmmkit.exit.mmio/1"): a changed extension gets a new
 * "/2" id and a host may keep serving "/1", so new features never break old plugins.
 *
 * ABI CHANGELOG (each minor only adds; every minor is listed here)
 *   1.0  Initial: entry, host services, handler registration and exit records for
 *        pio, mmio, msr, memory_fault, async_pf, hlt, other; host extensions
 *        coalesced_mmio/1, ioeventfd/1, hypercall/1, async_pf/1 (one plugin raises
 *        async page fault events that another plugin's handlers receive).
 *   1.1  Host extensions vcpu/1 (kick [any-thread], inject_nmi and pending_events
 *        [vcpu-thread], route_msrs and set_cpuid_bits [load-thread]) and pager/1
 *        (install_page, install_page_async); async_pf record kind VMM_ASYNC_PF_KICK;
 *        the host raises PAGE_MISSING itself when guest RAM is demand-paged (see
 *        vmm_exit_async_pf_t); inject_interrupt also works with an in-kernel irqchip
 *        (an MSI to the vCPU's local APIC). No 1.0 layout changed: v1.0 plugins load
 *        as before.
 *   1.2  (memory faults) A memory_fault record without an address says so: annotated 0,
 *        gpa VMM_MEMORY_FAULT_NO_GPA, size 0, and only whole-space handlers (length 0)
 *        see it; records the host locates itself (userfaultfd, the pager) are annotated.
 *        vmm_exit_t.memory_fault_known_flags (the flag bits this host understands);
 *        verdict VMM_BACKING_REPLACED (the only answer that resumes after EHWPOISON);
 *        handler flags VMM_HANDLER_ZERO_FILL (demand-zero RAM is left to the kernel) and
 *        VMM_HANDLER_ANY_THREAD (pages resolved on the host's fault router, no kick).
 *        No earlier layout changed.
 *   1.2  (snapshot/restore) Plugin-offered extension "org.vmmkit.plugin.state/1"
 *        (vmm_plugin_state_t, below the entry): a plugin saves and restores its own
 *        versioned state blob; a host refuses to snapshot a VM with a plugin that does
 *        not offer it. A save or restore that fails says why by logging it at
 *        VMM_LOG_ERROR during the call. No earlier layout changed.
 *   1.2  (reliability) Host extension seccomp/1 (allow_syscall
 *        [load-thread]): a plugin declares the system calls its handlers make beyond
 *        the vCPU threads' seccomp allow-list. No layout changed.
 *   1.2  (start-up) Host extension thread/1 (start_thread [any-thread]): a handler
 *        asks the host for a thread when it first needs one, instead of init()
 *        starting it for every guest. A host may not offer it. No layout changed.
 *   1.2  (QEMU's pc) With the in-kernel PIT, port 0x61 (channel 2's gate, its output
 *        and the speaker bit) is KVM's as well (KVM_PIT_SPEAKER_DUMMY), as Firecracker
 *        has it: a claim over it is refused as one over the PIT's. No layout changed.
 *
 * COMPATIBILITY RULES
 *   1. Every struct starts with `uint32_t struct_size` (sizeof as its producer was
 *      compiled). Structs only grow at the end; fields are never removed, reordered
 *      or retyped. Changing a struct's meaning needs a new major or a new extension id.
 *   2. The producer of a struct zero-fills it before setting fields, so fields unknown
 *      to the producer read as 0.
 *   3. A consumer honours the producer's struct_size: a field past it is absent (use
 *      VMM_HAS_FIELD) and is treated as 0 / NULL.
 *   4. The host refuses a plugin whose abi_major differs from its own.
 *   5. A plugin built for an older or equal minor loads in a newer host.
 *   6. A plugin whose abi_minor is newer than the host's is refused, with the plugin's
 *      id and both versions in the message.
 *   7. Extension ids are immutable: the layout behind "x/1" never changes.
 *   8. Enum/flag values are never reused. Fields that carry enums are uint32_t.
 *
 * THREADING (tag on every function below)
 *   [load-thread] Called on the thread that loads plugins. The host runs all
 *                 [load-thread] calls of all plugins one at a time, process-wide (never
 *                 two init/destroy calls concurrently, even for different VMs), so a
 *                 plugin may use a static buffer for error messages.
 *   [vcpu-thread] Called on the thread of the vCPU named by the call/record, while that
 *                 vCPU is stopped in an exit. Different vCPUs run concurrently, so one
 *                 handler may run on several threads at once: guard shared state.
 *                 The host kicks a vCPU thread (a stop, a pause, kick()) with the
 *                 real-time signal SIGRTMIN, whose handler is installed without
 *                 SA_RESTART so that KVM_RUN returns: a blocking system call made here
 *                 (read, write, poll, nanosleep, sem_wait, a raw futex) may then fail
 *                 with EINTR, and the handler retries it or returns (pthread mutexes
 *                 and condition variables do not return EINTR). Never block SIGRTMIN or install a
 *                 handler of your own for it.
 *   [any-thread]  Callable from any thread, concurrently; the callee is thread-safe.
 *
 * MEMORY: strings and pointers passed into a call are valid only during that call;
 * the callee copies what it keeps, unless a field says otherwise. Errors are returned
 * as 0 or a negative errno value (<errno.h>).
 *
 * ALIGNMENT: a pointer through which a service reads or writes plain values (get_reg's
 * value, every error_out, message_out, events_out, fd_out, thread_out, route_msrs'
 * msrs, read_guest/write_guest's buf) may have any alignment, e.g. a packed struct's
 * field: the host copies the bytes, and the call works as with an aligned one. A struct
 * the host reads in place (the entry, a vmm_handler_desc_t, a vmm_exit_async_pf_t, a
 * vmm_plugin_state_t) must be aligned as its type: one that is not is refused, as each
 * says.
 *
 * STRINGS: the host reads a string a plugin gives it (id, version, description, a
 * handler's name, an init or failure message, a log line, a stop reason, a hypercall
 * signature) up to its NUL or 4096 bytes, whichever comes first; a longer one is cut
 * there and shown with "… (cut at 4096 bytes)". Messages are shown escaped on one line.
 *
 * TRUST: a plugin runs in the VMM's process as trusted code, with all of its
 * privileges; nothing isolates the host from it. The host contains mistakes only:
 * a handler call (or typed hypercall) running past the VMM's budget is reported (plugin,
 * handler, vCPU, exit) and ends the run (it cannot be cancelled); calls it makes into
 * the host that run other handlers (an async-PF raise) do not restart its time. So is an init(), a destroy() or a
 * state save or restore (org.vmmkit.plugin.state/1) running past it; [load-thread] services called from
 * another thread or outside init() answer -EPERM; every service called through this
 * table after destroy() returned answers -ESHUTDOWN (log and request_stop do nothing,
 * get_extension returns NULL); the table itself stays readable.
 *
 * Libraries are loaded with RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE and never unloaded;
 * the same library may be init()ed several times (several VMs or instances): keep all
 * state in the instance, not in globals.
 */
#ifndef VMM_PLUGIN_H
#define VMM_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- versions */

#define VMM_PLUGIN_ABI_MAJOR 1 /* incompatible changes */
#define VMM_PLUGIN_ABI_MINOR 2 /* additions; see the changelog above */

/* True when a plugin built for ABI major.minor may load in this host (rules 4-6). */
#define VMM_PLUGIN_ABI_LOADABLE(major, minor) \
    ((major) == VMM_PLUGIN_ABI_MAJOR && (minor) <= VMM_PLUGIN_ABI_MINOR)

/* Name of the exported entry symbol, for dlsym(). */
#define VMM_PLUGIN_ENTRY_SYMBOL "vmm_plugin_entry"

/* True when the struct at `ptr` (which has a struct_size field, rule 3) is large enough
 * to contain `field` of struct `type`. Example: VMM_HAS_FIELD(host, vmm_host_t, log). */
#define VMM_HAS_FIELD(ptr, type, field)              \
    ((size_t)(ptr)->struct_size >= offsetof(type, field) + sizeof(((type *)0)->field))

#if defined(__GNUC__) || defined(__clang__)
#define VMM_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define VMM_PLUGIN_EXPORT
#endif

/* ------------------------------------------------------------ extension ids */

/* Exit classes. host->get_extension(id) returns a vmm_exit_class_info_t when the host
 * dispatches that class with that record layout; NULL otherwise. */
#define VMM_EXT_EXIT_PIO          "org.vmmkit.exit.pio/1"
#define VMM_EXT_EXIT_MMIO         "org.vmmkit.exit.mmio/1"
#define VMM_EXT_EXIT_MSR          "org.vmmkit.exit.msr/1"
#define VMM_EXT_EXIT_MEMORY_FAULT "org.vmmkit.exit.memory_fault/1"
#define VMM_EXT_EXIT_ASYNC_PF     "org.vmmkit.exit.async_pf/1"
#define VMM_EXT_EXIT_HLT          "org.vmmkit.exit.hlt/1"
#define VMM_EXT_EXIT_OTHER        "org.vmmkit.exit.other/1"
/* Optional host services; host->get_extension(id) returns the table named beside. */
#define VMM_EXT_HOST_COALESCED_MMIO "org.vmmkit.host.coalesced_mmio/1" /* vmm_host_coalesced_mmio_t */
#define VMM_EXT_HOST_IOEVENTFD      "org.vmmkit.host.ioeventfd/1"      /* vmm_host_ioeventfd_t */
#define VMM_EXT_HOST_HYPERCALL      "org.vmmkit.host.hypercall/1"      /* vmm_host_hypercall_t */
#define VMM_EXT_HOST_ASYNC_PF       "org.vmmkit.host.async_pf/1"       /* vmm_host_async_pf_t */
#define VMM_EXT_HOST_VCPU           "org.vmmkit.host.vcpu/1"           /* vmm_host_vcpu_t (1.1) */
#define VMM_EXT_HOST_PAGER          "org.vmmkit.host.pager/1"          /* vmm_host_pager_t (1.1) */

/* ------------------------------------------------------------------ enums */

/* Exit classes (vmm_exit_t.exit_class, vmm_handler_desc_t.exit_class). 0 is invalid
 * so that a zero-filled descriptor is refused. */
enum vmm_exit_class {
    VMM_EXIT_INVALID      = 0,
    VMM_EXIT_PIO          = 1, /* port I/O (KVM_EXIT_IO); record: pio */
    VMM_EXIT_MMIO         = 2, /* MMIO (KVM_EXIT_MMIO) outside guest RAM; record: mmio */
    VMM_EXIT_MSR          = 3, /* RDMSR/WRMSR routed to userspace; record: msr */
    VMM_EXIT_MEMORY_FAULT = 4, /* a missing/unmapped guest RAM page; record: memory_fault */
    VMM_EXIT_HLT          = 5, /* HLT (only without an in-kernel irqchip); no record */
    VMM_EXIT_OTHER        = 6, /* any other KVM exit reason; record: other */
    VMM_EXIT_ASYNC_PF     = 7  /* async page fault events; record: async_pf */
};

/* Handler verdicts (the return value of vmm_handler_desc_t.handle). */
typedef uint32_t vmm_verdict_t;
enum vmm_verdict {
    VMM_HANDLED  = 0, /* done: the host completes the exit and resumes the vCPU */
    VMM_NOT_MINE = 1, /* try the next handler; the record must be left unmodified */
    VMM_FAIL     = 2  /* the vCPU stops; exit->message is reported with the plugin id */
};

/* Log levels (vmm_host_t.log); lower is more severe. Every level reaches the VMM:
 * what is shown is the VMM's choice. The `vmm` launcher writes plugin lines to its own
 * log on stderr, mapped onto swift-log's levels (ERROR -> error, WARN -> warning,
 * INFO -> info, DEBUG -> debug, TRACE -> trace), filtered by `--log-level` (default
 * warning, so INFO and below need `--log-level info|debug|trace`), with the plugin
 * id as the line's source. A VMM embedding VMMKit receives every line in
 * PluginHost.logHandler (level, plugin id, message); its default prints ERROR and
 * WARN to stderr and drops the rest. A level above TRACE is logged as TRACE. */
enum vmm_log_level {
    VMM_LOG_ERROR = 0,
    VMM_LOG_WARN  = 1,
    VMM_LOG_INFO  = 2,
    VMM_LOG_DEBUG = 3,
    VMM_LOG_TRACE = 4
};

/* vCPU registers (vmm_host_t.get_reg / set_reg). RAX..R15 use the x86 instruction
 * encoding order, so a decoded ModRM register number is a vmm_reg_t. */
typedef uint32_t vmm_reg_t;
enum vmm_reg {
    VMM_REG_RAX = 0,  VMM_REG_RCX = 1,  VMM_REG_RDX = 2,  VMM_REG_RBX = 3,
    VMM_REG_RSP = 4,  VMM_REG_RBP = 5,  VMM_REG_RSI = 6,  VMM_REG_RDI = 7,
    VMM_REG_R8  = 8,  VMM_REG_R9  = 9,  VMM_REG_R10 = 10, VMM_REG_R11 = 11,
    VMM_REG_R12 = 12, VMM_REG_R13 = 13, VMM_REG_R14 = 14, VMM_REG_R15 = 15,
    VMM_REG_RIP    = 16,
    VMM_REG_RFLAGS = 17,
    VMM_REG_CR0    = 18,
    VMM_REG_CR2    = 19,
    VMM_REG_CR3    = 20,
    VMM_REG_CR4    = 21,
    VMM_REG_EFER   = 22,
    VMM_REG_CPL    = 23  /* current privilege level 0..3; read-only (set: -EPERM) */
};

/* vmm_handler_desc_t.flags */
#define VMM_HANDLER_EXCLUSIVE (1u << 0) /* this handler owns its range: see the descriptor */

/* vmm_exit_msr_t.reason; same values as KVM_MSR_EXIT_REASON_*. */
#define VMM_MSR_REASON_INVAL   (1u << 0) /* the kernel would have raised #GP */
#define VMM_MSR_REASON_UNKNOWN (1u << 1) /* the kernel does not know the MSR */
#define VMM_MSR_REASON_FILTER  (1u << 2) /* the MSR filter routed it to userspace */

/* vmm_exit_memory_fault_t.access / vmm_exit_async_pf_t.access (0 = unknown). */
#define VMM_ACCESS_READ  (1u << 0)
#define VMM_ACCESS_WRITE (1u << 1)
#define VMM_ACCESS_EXEC  (1u << 2)

/* vmm_exit_memory_fault_t.flags; same value as KVM_MEMORY_EXIT_FLAG_PRIVATE. */
#define VMM_MEMORY_FAULT_PRIVATE (1u << 3)

/* ---- ABI 1.2: memory faults (see vmm_exit_memory_fault_t, "WHO SEES WHICH FAULT") ---- */
/* vmm_exit_memory_fault_t.gpa of a fault without an address (annotated 0, size 0): no
 * guest-physical address is this large (x86 has at most 52 address bits). */
#define VMM_MEMORY_FAULT_NO_GPA 0xffffffffffffffffull /* UINT64_MAX */
/* Verdict (memory_fault records only): the handler replaced the memory behind the faulting
 * range (e.g. a fresh page over hardware-poisoned memory), so the vCPU may re-enter.
 * After EHWPOISON it is the only verdict that resumes the vCPU; for other memory faults
 * it means VMM_HANDLED. Other classes: treated as an unknown verdict (the vCPU stops). */
#define VMM_BACKING_REPLACED 3u
/* vmm_handler_desc_t.flags (VMM_EXIT_MEMORY_FAULT only; -EINVAL for other classes): the
 * handler fills every page it is asked for with zeros and nothing else. The host may then
 * leave that range to the kernel's own demand-zero memory (no user-space round trip per
 * first touch) and never call the handler there; ranges of other memory-fault handlers
 * are still paged through them, this one below them by priority as registered. */
#define VMM_HANDLER_ZERO_FILL (1u << 1)
/* vmm_handler_desc_t.flags (VMM_EXIT_MEMORY_FAULT only; -EINVAL for other classes): handle
 * is [any-thread] for memory-fault records: the host may call it on its fault router
 * thread for a vCPU blocked in the kernel on the page (vcpu_id names that vCPU; get_reg
 * and the other [vcpu-thread] calls answer -EBUSY there), concurrently with other calls.
 * When every memory-fault handler says so, the host resolves ring-3 faults on demand-paged
 * RAM without kicking the vCPU out of KVM_RUN (no signal, no re-entry per page), except
 * for a vCPU whose guest enabled async page faults (those need the vCPU). */
#define VMM_HANDLER_ANY_THREAD (1u << 2)
/* ---- end of 1.2 memory-fault additions ---- */

/* vmm_exit_async_pf_t.kind */
#define VMM_ASYNC_PF_PAGE_MISSING 1u /* the vCPU touched a page that is not there yet */
#define VMM_ASYNC_PF_PAGE_READY   2u /* a page reported missing has been installed */
#define VMM_ASYNC_PF_KICK         3u /* (1.1) the vCPU was kicked (vmm_host_vcpu_t.kick);
                                        gpa, size and access are 0 */

/* vmm_host_vcpu_t.pending_events bits (1.1). */
#define VMM_EVENT_EXCEPTION (1u << 0) /* an exception is queued for the next entry */
#define VMM_EVENT_INTERRUPT (1u << 1) /* an external interrupt is being injected */
#define VMM_EVENT_NMI       (1u << 2) /* an NMI is queued or being injected */

/* vmm_host_vcpu_t.set_cpuid_bits reg (1.1). */
#define VMM_CPUID_EAX 0u
#define VMM_CPUID_EBX 1u
#define VMM_CPUID_ECX 2u
#define VMM_CPUID_EDX 3u

/* Address spaces for the coalesced_mmio and ioeventfd extensions. */
#define VMM_SPACE_MMIO 0u
#define VMM_SPACE_PIO  1u

/* ----------------------------------------------------------- exit record */

/* Port I/O. One exit covers `count` elements of `size` bytes (count > 1 for rep ins). */
typedef struct vmm_exit_pio {
    uint16_t port;     /* I/O port of the access */
    uint8_t  size;     /* element size in bytes: 1, 2 or 4 */
    uint8_t  is_write; /* 1 = OUT (guest writes), 0 = IN (guest reads) */
    uint32_t count;    /* number of elements, >= 1 */
    uint8_t *data;     /* size*count bytes, little-endian: the written values for OUT;
                          for IN the handler fills them (they reach the guest) */
} vmm_exit_pio_t;

/* MMIO outside guest RAM. */
typedef struct vmm_exit_mmio {
    uint64_t gpa;         /* guest-physical address of the access */
    uint32_t len;         /* access size in bytes, 1..8 */
    uint8_t  is_write;    /* 1 = guest store, 0 = guest load */
    uint8_t  reserved[3]; /* zero */
    uint8_t  data[8];     /* first len bytes, little-endian: the stored value, or for a
                             load filled by the handler (KVM extends it) */
} vmm_exit_mmio_t;

/* RDMSR / WRMSR routed to userspace. */
typedef struct vmm_exit_msr {
    uint32_t index;       /* MSR number (ECX) */
    uint32_t reason;      /* VMM_MSR_REASON_* */
    uint64_t data;        /* WRMSR: the value (EDX:EAX); RDMSR: the handler sets it */
    uint8_t  is_write;    /* 1 = WRMSR, 0 = RDMSR */
    uint8_t  error;       /* the handler sets 1 to raise #GP in the guest instead */
    uint8_t  reserved[6]; /* zero */
} vmm_exit_msr_t;

/* A guest access to guest RAM that is not backed yet (demand paging). The host turns
 * each source it detects into this record: KVM_RUN failing with EFAULT/EHWPOISON
 * (annotated when exit_reason is KVM_EXIT_MEMORY_FAULT), and, where the host's
 * memory-fault layer recognises them, an MMIO exit inside a RAM slot and userfaultfd
 * events. On VMM_HANDLED the host retries or completes the faulting access itself
 * (the handler only makes the page present, with write_guest: a write_guest that
 * overlaps the page being fetched must lie inside it, else it answers -EFAULT and
 * writes nothing, since the rest would wait on this very fetch).
 *
 * WHO SEES WHICH FAULT (since 1.2; the host enforces it before any handler runs):
 *   - Located (annotated 1): the kernel said where, in a fresh KVM_EXIT_MEMORY_FAULT
 *     annotation, a userfaultfd message or an MMIO exit inside RAM. size >= 1 and
 *     gpa + size <= 2^64 (a record that breaks this stops the vCPU; no handler sees
 *     it). Handlers whose range contains gpa see it, in priority order.
 *   - Un-annotated (annotated 0): KVM_RUN failed with EFAULT/EHWPOISON and no fresh
 *     annotation (stale or missing exit info). It has NO address: gpa is
 *     VMM_MEMORY_FAULT_NO_GPA, size 0, flags 0. Range handlers never see it (there is
 *     nothing to match); only whole-space handlers (length 0) do. A handler that cannot
 *     find the address itself (e.g. by translating RIP) must return VMM_NOT_MINE.
 *     Unhandled, the vCPU stops with a diagnosis naming vCPU, RIP and the last exits.
 *   - EHWPOISON (err_no): the host memory behind the access is hardware-poisoned.
 *     VMM_HANDLED does not resume the vCPU (it stops, reporting the poison); only
 *     VMM_BACKING_REPLACED does, when the handler replaced the memory behind the range.
 *   - Flags: the kernel's bits, raw. memory_fault_known_flags (1.2) says which bits this
 *     host understands; refuse (VMM_NOT_MINE) a fault with bits you do not know.
 * (1.0/1.1 hosts passed un-annotated faults as gpa 0, size 0 to every handler, and the
 * pager's records with annotated 0.) */
typedef struct vmm_exit_memory_fault {
    uint64_t gpa;         /* first faulting guest-physical address; VMM_MEMORY_FAULT_NO_GPA
                             when annotated is 0 */
    uint64_t size;        /* bytes from gpa: at least 1 when annotated (a page when only
                             that is known); 0 when annotated is 0 */
    uint64_t flags;       /* VMM_MEMORY_FAULT_* (KVM memory_fault flags, raw, when
                             annotated; bits beyond memory_fault_known_flags are unknown) */
    int32_t  err_no;      /* errno KVM_RUN returned (e.g. EFAULT, EHWPOISON), 0 if none */
    uint32_t access;      /* VMM_ACCESS_* bits, 0 when unknown */
    uint8_t  annotated;   /* 1 if gpa/size locate the fault (the kernel supplied them:
                             KVM_EXIT_MEMORY_FAULT, or since 1.2 a userfaultfd message or
                             RAM MMIO exit); 0 = no address at all */
    uint8_t  reserved[7]; /* zero */
} vmm_exit_memory_fault_t;

/* Async page fault events for a vCPU whose access to a missing page may be reported
 * to the guest asynchronously. Produced by the host's memory-fault path.
 * (1.1) When the VMM demand-pages guest RAM (its pager, asking the memory_fault
 * plugins for pages), the host itself raises PAGE_MISSING [vcpu-thread] for a vCPU
 * stopped at a clean boundary on a missing page (a ring-3 access kicked out of
 * KVM_RUN, the faulting instruction not executed; get_reg, inject_exception etc. work
 * on it): VMM_HANDLED = the handler told the guest (e.g. an async "not present"): the
 * vCPU resumes without the page; VMM_NOT_MINE = the host fetches the page before the
 * vCPU resumes (waiting for a fetch already under way for that page). Handlers must
 * return VMM_NOT_MINE for kinds they do not know. */
typedef struct vmm_exit_async_pf {
    uint64_t gpa;    /* guest-physical address of the page */
    uint64_t size;   /* bytes from gpa */
    uint32_t kind;   /* VMM_ASYNC_PF_* */
    uint32_t access; /* VMM_ACCESS_* bits of the faulting access, 0 when unknown */
} vmm_exit_async_pf_t;

/* Any other KVM exit (class VMM_EXIT_OTHER). */
typedef struct vmm_exit_other {
    uint32_t kvm_exit_reason; /* kvm_run.exit_reason (KVM_EXIT_*) */
    uint32_t reserved;        /* zero */
} vmm_exit_other_t;

/* The record a handler receives. Produced by the host, valid only during the handler
 * call. Only the sub-struct of exit_class is meaningful; the others hold unspecified
 * bytes. Sub-structs are frozen (rule 7): a later layout of a class is a new sub-struct
 * appended at the end, under a new "/2" id. */
typedef struct vmm_exit {
    uint32_t struct_size; /* sizeof(vmm_exit_t) as the host was compiled */
    uint32_t vcpu_id;     /* the vCPU this exit belongs to (0-based) */
    uint32_t exit_class;  /* enum vmm_exit_class */
    uint32_t reserved;    /* zero */
    const char *message;  /* NULL on entry. On VMM_FAIL the handler may point it at a
                             reason: static storage, or kept valid until the next call on
                             this vCPU. Ignored for the other verdicts. */
    vmm_exit_pio_t          pio;          /* VMM_EXIT_PIO */
    vmm_exit_mmio_t         mmio;         /* VMM_EXIT_MMIO */
    vmm_exit_msr_t          msr;          /* VMM_EXIT_MSR */
    vmm_exit_memory_fault_t memory_fault; /* VMM_EXIT_MEMORY_FAULT */
    vmm_exit_async_pf_t     async_pf;     /* VMM_EXIT_ASYNC_PF */
    vmm_exit_other_t        other;        /* VMM_EXIT_OTHER */
    /* ---- 1.2 (memory faults); check with VMM_HAS_FIELD before use ---- */
    uint64_t memory_fault_known_flags; /* VMM_EXIT_MEMORY_FAULT: the memory_fault.flags
                                          bits this host understands (e.g.
                                          VMM_MEMORY_FAULT_PRIVATE); others are unknown */
} vmm_exit_t;

/* Returned by host->get_extension(VMM_EXT_EXIT_*): the host dispatches this class. */
typedef struct vmm_exit_class_info {
    uint32_t struct_size; /* sizeof(vmm_exit_class_info_t) as the host was compiled */
    uint32_t exit_class;  /* the enum vmm_exit_class value to register handlers with */
} vmm_exit_class_info_t;

/* ------------------------------------------------------ handler registration */

/* Describes one handler; produced (zero-filled) by the plugin, copied by the host
 * during register_handler. An exit matches when its address (port, gpa or MSR index)
 * lies in [base, base + length). Matching handlers run in descending priority (equal
 * priorities in registration order) until one returns other than VMM_NOT_MINE; when all
 * decline, the host applies its default for the class. A range no exit can reach is
 * refused with -EINVAL: MMIO over writable guest RAM; with the VM's in-kernel irqchip
 * (created before the plugin loads, as the `vmm` launcher does), MMIO over the I/O APIC
 * [0xfec00000, 0xfec00100) or the local APIC page at its reset base [0xfee00000,
 * 0xfee01000), which KVM serves itself; ports overlapping, wholly or in part, those KVM
 * serves: with the irqchip the PICs' 0x20-0x21 and 0xa0-0xa1 and the ELCR's
 * 0x4d0-0x4d1, with the in-kernel PIT (KVM_CREATE_PIT2, created with the irqchip by the
 * launcher) its 0x40-0x43 and port 0x61, channel 2's gate and speaker (KVM keeps every
 * access that lies within a device's ports); and a HLT descriptor whose base
 * or length is not 0. The message names the device (for ports, and the first port
 * of it claimed). */
typedef struct vmm_handler_desc {
    uint32_t struct_size; /* sizeof(vmm_handler_desc_t) as the plugin was compiled */
    uint32_t exit_class;  /* enum vmm_exit_class */
    uint64_t base;        /* PIO: first port; MMIO, MEMORY_FAULT, ASYNC_PF: first gpa;
                             MSR: first MSR index; OTHER: first KVM exit reason; HLT: 0 */
    uint64_t length;      /* range size, >= 1 for PIO/MMIO/MSR; 0 = the whole space for
                             MEMORY_FAULT/ASYNC_PF/OTHER; 0 for HLT */
    int32_t  priority;    /* higher runs first; 0 is normal */
    uint32_t flags;       /* VMM_HANDLER_*. EXCLUSIVE: this handler must be alone on its
                             range: registering it over any handler of the same class, or any
                             handler over it, or over another plugin's ioeventfd doorbell, is
                             refused with -EEXIST and a message naming both owners.
                             Non-exclusive handlers share ranges and run by priority.
                             Unknown bits: -EINVAL */
    /* [vcpu-thread] Handles one exit. `ex` is valid only during the call. Must not
     * block for long, and must not call register_handler. */
    vmm_verdict_t (*handle)(void *user, vmm_exit_t *ex);
    void *user;           /* passed back as handle's first argument */
    const char *name;     /* optional label for diagnostics (e.g. "com1"), may be NULL */
} vmm_handler_desc_t;

/* ------------------------------------------------------------ host services */

/* Handed to init(); produced by the host; valid until destroy() returns. Every
 * function takes host_data as its first argument. */
typedef struct vmm_host {
    uint32_t struct_size; /* sizeof(vmm_host_t) as the host was compiled */
    uint16_t abi_major;   /* the host's VMM_PLUGIN_ABI_MAJOR */
    uint16_t abi_minor;   /* the host's VMM_PLUGIN_ABI_MINOR (>= the plugin's) */
    void *host_data;      /* opaque, distinct per plugin instance: identifies the caller */

    /* [any-thread] Logs one line (no trailing newline needed) under the plugin's id.
     * level: enum vmm_log_level (which levels are shown: see there). The host copies
     * msg before returning; NULL logs an empty line. */
    void (*log)(void *host_data, uint32_t level, const char *msg);

    /* [any-thread] Copies len bytes of guest-physical memory at gpa into buf, or buf
     * into it (buf at any alignment). 0, or -EFAULT if any byte is outside guest RAM
     * (nothing is copied), or -EAGAIN when called on the thread that delivers
     * demand-paged memory (a memory-fault handler on the fault router) for a page not
     * present yet, and, on any thread, a read by a memory-fault handler of the page it
     * is being asked to fill, and for a page still missing once the run is over (the
     * demand pager stopped: in destroy(), from a plugin's thread): touching any of these
     * would wait for ever. */
    int (*read_guest)(void *host_data, uint64_t gpa, void *buf, size_t len);
    int (*write_guest)(void *host_data, uint64_t gpa, const void *buf, size_t len);

    /* [vcpu-thread] Reads / writes a register of the calling thread's own vCPU (set
     * takes effect when the vCPU resumes). get_reg stores the 8 bytes at *value, which
     * may have any alignment. 0; -EINVAL unknown reg or value NULL; -EPERM read-only reg;
     * -EBUSY vcpu_id is not the vCPU of the calling thread. */
    int (*get_reg)(void *host_data, uint32_t vcpu_id, vmm_reg_t reg, uint64_t *value);
    int (*set_reg)(void *host_data, uint32_t vcpu_id, vmm_reg_t reg, uint64_t value);

    /* [vcpu-thread] Queues exception `vector` (0..31) on the calling thread's vCPU,
     * delivered when it resumes. payload is the exception payload (CR2 for #PF, DR6
     * for #DB); the host never writes CR2 itself before delivery. 0; -EINVAL bad
     * vector; -EBUSY an exception is already pending (never overwritten) or vcpu_id
     * is not the calling thread's vCPU;
     * -ENOTSUP has_payload but the kernel lacks exception payloads. */
    int (*inject_exception)(void *host_data, uint32_t vcpu_id, uint32_t vector,
                            uint32_t has_error_code, uint32_t error_code,
                            uint32_t has_payload, uint64_t payload);

    /* [vcpu-thread] Delivers external interrupt `vector` (32..255) to the calling
     * thread's vCPU. Without an in-kernel irqchip: KVM_INTERRUPT when it resumes.
     * With one (since 1.1): an MSI to the vCPU's local APIC, which holds the vector until
     * the guest can take it (the guest must have its APIC enabled); never -EAGAIN there.
     * 0; -EINVAL bad vector; -EBUSY vcpu_id is not the calling thread's vCPU; -EAGAIN
     * (no irqchip) the vCPU cannot take an interrupt now (since 1.1 this includes an
     * exception or NMI already queued, e.g. a #PF just injected): the host has requested
     * an interrupt window, so the vCPU exits (class OTHER, KVM exit reason 7) as soon as
     * it can and the plugin retries then; -EIO the kernel refused the MSI. (1.0 hosts
     * answered -ENOTSUP with an irqchip; plugins should still treat it as "not here".) */
    int (*inject_interrupt)(void *host_data, uint32_t vcpu_id, uint32_t vector);

    /* [any-thread] Sets interrupt line `irq` of the in-kernel irqchip to level (0/1),
     * KVM_IRQ_LINE. Lines are GSIs routed as QEMU's pc routes them on KVM: ISA IRQ n
     * (0-15) reaches the PICs and I/O APIC pin n, but line 0 (the PIT's) pin 2, and line
     * 2 pin 2 alone; 16-23 the I/O APIC. 0; -ENOTSUP the VM has no in-kernel irqchip;
     * -EINVAL an irq other than 0 to 23 or a level other than 0 or 1. */
    int (*set_irq_line)(void *host_data, uint32_t irq, uint32_t level);

    /* [load-thread] Registers a handler; only during init(). 0 or a negative errno,
     * with *error_out (if error_out is not NULL) pointing at a host-owned message
     * valid until init returns (-EINVAL among others for a desc not aligned as a
     * vmm_handler_desc_t; error_out itself may have any alignment, here and in every
     * other service that takes one). A failed init discards its registrations (and
     * undoes its route_msrs and set_cpuid_bits calls). */
    int (*register_handler)(void *host_data, const vmm_handler_desc_t *desc,
                            const char **error_out);

    /* [any-thread] Asks the host to stop vCPU vcpu_id, or the whole VM for -1, after
     * the current exit. exit_code becomes the VM's result (the first request wins);
     * reason (copied) is reported with the plugin id, one line per request (the `vmm`
     * launcher prints "vmm: plugin ID asked to stop the VM (code N): REASON" on stderr;
     * a VMM embedding VMMKit receives it in PluginHost.stopHandler); a NULL or empty
     * reason is not reported (as for a guest's own exit through a debug port). Any
     * other vcpu_id (below -1, or no vCPU of the VM) is refused: nothing stops, and
     * since the call returns nothing the host logs a VMM_LOG_ERROR line saying so under
     * the plugin's id. Called from init() on its thread, the request is held until init
     * returns: applied if init succeeds (the vCPUs then stop as they start, before any
     * guest code runs), dropped with its registrations if init fails. */
    void (*request_stop)(void *host_data, int32_t vcpu_id, int32_t exit_code,
                         const char *reason);

    /* [any-thread] Looks up a host extension by id (VMM_EXT_*). Returns its table,
     * valid until destroy() returns, or NULL when the host (or kernel) lacks it.
     * During init() the host also answers with an extension that a plugin loaded
     * earlier into the same VM offers (its get_extension): look such tables up in
     * init() and keep the pointer. */
    const void *(*get_extension)(void *host_data, const char *id);
} vmm_host_t;

/* ------------------------------------------------------- host extensions */

/* VMM_EXT_HOST_COALESCED_MMIO: KVM_REGISTER_COALESCED_MMIO/PIO for write-only ranges. */
typedef struct vmm_host_coalesced_mmio {
    uint32_t struct_size; /* sizeof(vmm_host_coalesced_mmio_t) as the host was compiled */
    uint32_t reserved;    /* zero */
    /* [load-thread] Guest writes to [addr, addr+len) in `space` (VMM_SPACE_*) are
     * queued by the kernel without an exit. The host replays them, in order, as
     * ordinary write exits to the handlers of that range (count 1, vcpu_id = the vCPU
     * that drains the ring) before it dispatches any other exit of that vCPU and before
     * the VM stops. Reads still exit. 0; -ENOTSUP the kernel lacks it (the message
     * says so); -EINVAL range not covered by one of the caller's handlers, over
     * 0x7fffffff bytes, or overlapping a zone already added (by any plugin). */
    int (*add)(void *host_data, uint32_t space, uint64_t addr, uint64_t len,
               const char **error_out);
} vmm_host_coalesced_mmio_t;

/* vmm_host_ioeventfd_t.add flags */
#define VMM_IOEVENTFD_DATAMATCH (1u << 0) /* only writes of exactly `datamatch` signal */

/* VMM_EXT_HOST_IOEVENTFD: doorbells without vCPU exits, and irqfd. */
typedef struct vmm_host_ioeventfd {
    uint32_t struct_size; /* sizeof(vmm_host_ioeventfd_t) as the host was compiled */
    uint32_t reserved;    /* zero */
    /* [load-thread] Guest writes of `len` bytes (1, 2, 4, 8; 0 = any) to `addr` in
     * `space` complete in the kernel without an exit and signal an eventfd. The host
     * watches it and calls notify(user, n) [any-thread] (a host thread), n = writes
     * since the last call. Writes that do not match still exit normally. 0; -ENOTSUP
     * the kernel lacks it; -EEXIST overlaps another doorbell or another owner's
     * exclusive handler range (the message names it). */
    int (*add)(void *host_data, uint32_t space, uint64_t addr, uint32_t len,
               uint32_t flags, uint64_t datamatch,
               void (*notify)(void *user, uint64_t n), void *user,
               const char **error_out);
    /* [load-thread] Binds a new eventfd to irqchip pin `gsi` (KVM_IRQFD) and stores it
     * in *fd_out (any alignment); writing a uint64_t 1 to it (any thread) raises the
     * interrupt. The host owns and closes the fd after destroy(). 0; -ENOTSUP no
     * in-kernel irqchip; -EINVAL a gsi other than 0 to 23. */
    int (*add_irqfd)(void *host_data, uint32_t gsi, int *fd_out, const char **error_out);
} vmm_host_ioeventfd_t;

/* Guest hypercall convention (vmcall cannot be used on every host): the guest puts
 * the hypercall number in EAX, up to six arguments in RDI, RSI, RDX, R10, R8, R9 and
 * executes a 4-byte `out %eax, $VMM_HYPERCALL_PORT`; the result is in RAX. An
 * unregistered number returns -ENOSYS (two's complement) in RAX. */
#define VMM_HYPERCALL_PORT 0xe4

/* VMM_EXT_HOST_HYPERCALL: hypercall handlers with a signature given at run time
 * (the host calls them through libffi). */
typedef struct vmm_host_hypercall {
    uint32_t struct_size; /* sizeof(vmm_host_hypercall_t) as the host was compiled */
    uint32_t reserved;    /* zero */
    /* [load-thread] Registers fn for hypercall `number`; only during init(). signature is
     * "RET(ARG,...)" (spaces allowed): RET is void, i8..i64, u8..u64 or ptr; each ARG
     * (0 to 6) is i8, i16, i32, i64, u8, u16, u32, u64 or ptr. fn is called [vcpu-thread]
     * as RET fn(void *user, ARG...): integer arguments are the guest registers truncated
     * to their type; ptr is the host address of the guest-physical address in the
     * register (NULL if not guest RAM; contiguous only to the end of its RAM region:
     * take a u64 and use read_guest for bounded access). The result is extended to 64
     * bits into RAX (void: 0). 0; -EINVAL bad signature (message says where);
     * -EEXIST number taken (owner named). */
    int (*register_hypercall)(void *host_data, uint32_t number, const char *signature,
                              void (*fn)(void), void *user, const char **error_out);
} vmm_host_hypercall_t;

/* VMM_EXT_HOST_ASYNC_PF: a plugin that learns about missing pages (demand paging,
 * post-copy) raises async page fault events; the host hands each one to the handlers
 * registered for VMM_EXIT_ASYNC_PF (an async-PF plugin), in priority order, exactly
 * like an exit: the record has exit_class VMM_EXIT_ASYNC_PF, vcpu_id and async_pf set.
 * Handlers of that class therefore run on the raiser's thread. */
#define VMM_VCPU_NONE 0xffffffffu /* vcpu_id of an event raised off any vCPU thread */
typedef struct vmm_host_async_pf {
    uint32_t struct_size; /* sizeof(vmm_host_async_pf_t) as the host was compiled */
    uint32_t reserved;    /* zero */
    /* Raises one event and returns the verdict: VMM_HANDLED a handler took it (for
     * PAGE_MISSING: the guest was told "not present"; the raiser must not stall the
     * vCPU); VMM_NOT_MINE no handler took it (the raiser resolves the fault itself,
     * synchronously); VMM_FAIL with *message_out (if not NULL; any alignment) set to the
     * handler's message, valid until the next call on this thread.
     * A vcpu_id that is not one of the VM's vCPUs (nor VMM_VCPU_NONE), or a kind other
     * than PAGE_MISSING, PAGE_READY or KICK, is refused: VMM_FAIL with a message; so is
     * a raise nested more than 8 deep on one thread (a handler raising from inside one),
     * and an event not aligned as a vmm_exit_async_pf_t.
     * PAGE_MISSING: [vcpu-thread], vcpu_id is the calling thread's vCPU, during its exit
     * (from elsewhere: VMM_FAIL with a message).
     * PAGE_READY: [any-thread] (e.g. a fetcher thread); vcpu_id is the vCPU that
     * faulted, or VMM_VCPU_NONE. Handlers must be thread-safe for this kind. */
    vmm_verdict_t (*raise)(void *host_data, uint32_t vcpu_id,
                           const vmm_exit_async_pf_t *event, const char **message_out);
} vmm_host_async_pf_t;

/* VMM_EXT_HOST_VCPU (1.1): vCPU control for plugins that run beside the guest (async
 * page faults): get a vCPU out of the guest from another thread, NMIs, event state,
 * MSRs routed to user space and CPUID bits. */
typedef struct vmm_host_vcpu {
    uint32_t struct_size; /* sizeof(vmm_host_vcpu_t) as the host was compiled */
    uint32_t reserved;    /* zero */
    /* [any-thread] Gets vCPU vcpu_id out of the guest (immediate_exit plus a signal).
     * Then, on that vCPU's thread before it re-enters, the host raises one async_pf
     * record of kind VMM_ASYNC_PF_KICK to every VMM_EXIT_ASYNC_PF handler (each is
     * called whatever the others answer; VMM_FAIL stops the vCPU with the message).
     * Kicks made before that record is raised coalesce into it. A vCPU blocked in the
     * kernel at ring 0 on a missing page gets out only once the page is present.
     * 0; -EINVAL no vCPU vcpu_id. */
    int (*kick)(void *host_data, uint32_t vcpu_id);
    /* [vcpu-thread] Queues an NMI (KVM_NMI) for the calling thread's vCPU, delivered
     * when it resumes. 0; -EBUSY vcpu_id is not the calling thread's vCPU; -EIO. */
    int (*inject_nmi)(void *host_data, uint32_t vcpu_id);
    /* [vcpu-thread] Stores in *events_out (any alignment) the VMM_EVENT_* bits of the
     * events already queued for the calling thread's vCPU's next entry
     * (KVM_GET_VCPU_EVENTS): a new event injected now would merge with or replace them.
     * 0; -EBUSY as above; -EINVAL events_out NULL; -EIO. */
    int (*pending_events)(void *host_data, uint32_t vcpu_id, uint32_t *events_out);
    /* [load-thread] Routes guest RDMSR/WRMSR of msrs[0..count) (an array at any
     * alignment) to user space, as VMM_EXIT_MSR records with reason
     * VMM_MSR_REASON_FILTER (KVM_X86_SET_MSR_FILTER with KVM_CAP_X86_USER_SPACE_MSR), so
     * the kernel's own handling of them stays off.
     * Requests of all plugins add up; only during init(). 0; -ENOTSUP the kernel lacks
     * MSR filters; -EINVAL too many distinct MSR clusters (message says so). */
    int (*route_msrs)(void *host_data, const uint32_t *msrs, uint32_t count,
                      const char **error_out);
    /* [load-thread] On every vCPU of the VM, sets the bits `set` and then clears the
     * bits `clear` of register `reg` (VMM_CPUID_*) of CPUID leaf `function`, subleaf
     * `index` (0 for leaves without subleaves). Applied at once to the vCPUs' current
     * CPUID: load the plugin after the VMM created the vCPUs and set their CPUID, before
     * they run. Only during init(). 0; -ENODEV the VM has no vCPU yet; -ENOENT no such
     * leaf; -EINVAL bad reg. */
    int (*set_cpuid_bits)(void *host_data, uint32_t function, uint32_t index, uint32_t reg,
                          uint32_t set, uint32_t clear, const char **error_out);
} vmm_host_vcpu_t;

/* VMM_EXT_HOST_PAGER (1.1): the VMM's demand pager (guest RAM filled on first touch
 * from the memory_fault plugins or another page source). The table is always offered;
 * its calls answer -ENODEV while no pager is attached (a VMM attaches it after loading
 * the plugins). */
typedef struct vmm_host_pager {
    uint32_t struct_size; /* sizeof(vmm_host_pager_t) as the host was compiled */
    uint32_t reserved;    /* zero */
    /* [any-thread] Makes the page containing gpa present: fetched from the pager's
     * source and installed atomically, once however many threads ask (the others wait
     * for it). Returns when it is present. 0; -ENODEV no pager; -EINVAL gpa outside the
     * demand-paged region; -EIO the source could not deliver it; -EDEADLK called from
     * a memory-fault handler filling a page (the fetch would wait on itself, or nest
     * one fetch a page: read ahead with install_page_async instead). */
    int (*install_page)(void *host_data, uint64_t gpa);
    /* [any-thread] The same in the background, for vCPU vcpu_id: returns at once. Once
     * the page is installed the host raises VMM_ASYNC_PF_PAGE_READY (gpa = the page,
     * size 4096) to the VMM_EXIT_ASYNC_PF handlers, in priority order until one returns
     * other than VMM_NOT_MINE, on vcpu_id's thread (kicking it out of the guest). If the
     * source cannot deliver the page, that vCPU stops, the message naming the page.
     * Pages are fetched one at a time, in request order. 0; -ENODEV; -EINVAL bad gpa or
     * no vCPU vcpu_id; -EAGAIN 65536 requests wait already, or the VMM is stopping
     * (nothing will be raised for this one). */
    int (*install_page_async)(void *host_data, uint32_t vcpu_id, uint64_t gpa);
} vmm_host_pager_t;

/* ------------------------------------------- ABI 1.2 (issue 12): seccomp/1 */

/* vCPU threads may run under a seccomp-bpf allow-list (the `vmm` launcher's default;
 * the list: Docs/Seccomp.md). A call outside it fails with -EPERM and is reported with
 * the vCPU and the call's name. A plugin whose handlers need more declares it here. */
#define VMM_EXT_HOST_SECCOMP "org.vmmkit.host.seccomp/1" /* vmm_host_seccomp_t (1.2) */

typedef struct vmm_host_seccomp {
    uint32_t struct_size; /* sizeof(vmm_host_seccomp_t) as the host was compiled */
    uint32_t reserved;    /* zero */
    /* [load-thread] Declares that this instance's handlers make system call `nr`
     * (the x86_64 number, SYS_* of <sys/syscall.h>); only during init(). The VMM adds
     * the calls its loaded plugins declared to the filter each vCPU thread installs
     * when it starts; without seccomp nothing changes. A failed init's declarations
     * are dropped. 0; -EPERM outside init() or off the thread running it; -EINVAL nr
     * is not an x86_64 system call number (0..1023). */
    int (*allow_syscall)(void *host_data, uint32_t nr, const char **error_out);
} vmm_host_seccomp_t;

/* ------------------------------------------- ABI 1.2 (issue 14): thread/1 */

/* A vCPU thread may not start threads (the seccomp list refuses clone), so a plugin
 * that needs one for some guests only (a console writer, for a guest that prints faster
 * than its console reads) asks the host when it first does. A host that cannot serve
 * it answers get_extension NULL: start the thread in init() then. */
#define VMM_EXT_HOST_THREAD "org.vmmkit.host.thread/1" /* vmm_host_thread_t (1.2) */

typedef struct vmm_host_thread {
    uint32_t struct_size; /* sizeof(vmm_host_thread_t) as the host was compiled */
    uint32_t reserved;    /* zero */
    /* [any-thread] Starts a joinable thread running fn(arg) and returns once it exists
     * (from a vCPU thread: after a round trip to a host thread that may start threads).
     * 0 with *thread_out (any alignment) set to its pthread_t, which the plugin joins or
     * detaches before its destroy() returns; -EINVAL fn or thread_out NULL; -ESHUTDOWN
     * the VMM no longer starts threads (it is ending); else pthread_create's error,
     * negated. */
    int (*start_thread)(void *host_data, void *(*fn)(void *arg), void *arg, uint64_t *thread_out);
} vmm_host_thread_t;

/* ------------------------------------------------------------- the entry */

/* The plugin's descriptor: a const data symbol named "vmm_plugin_entry". The host
 * reads and validates it before calling any plugin code. A symbol at an address that is
 * not aligned as a vmm_plugin_entry_t (a multiple of 8) is refused before any field is
 * read: a function's name, a field of a packed struct. */
typedef struct vmm_plugin_entry {
    uint32_t struct_size; /* sizeof(vmm_plugin_entry_t) */
    uint16_t abi_major;   /* VMM_PLUGIN_ABI_MAJOR the plugin was built with */
    uint16_t abi_minor;   /* VMM_PLUGIN_ABI_MINOR the plugin was built with */
    const char *id;       /* unique reverse-DNS id, e.g. "org.example.mydevice"; not NULL;
                           * ASCII letters, digits, '.', '-', '_', at most 253 bytes */
    const char *version;  /* plugin version, e.g. "1.2.0"; not NULL */
    const char *description; /* one line for listings; may be NULL */

    /* [load-thread] Creates an instance. host stays valid until destroy() returns.
     * config is the plugin's configuration (comma-separated key=value by convention;
     * "" if none, never NULL). Returns a non-NULL instance pointer (any non-NULL value
     * if the plugin keeps no state), or NULL with *error_out set to a message in static
     * storage or storage valid until the next [load-thread] call into this library.
     * Handlers are registered here. */
    void *(*init)(const vmm_host_t *host, const char *config, const char **error_out);

    /* [load-thread] Destroys an instance after its VM stopped; no handler of it runs
     * during or after this call. Instances are destroyed in reverse load order. */
    void (*destroy)(void *instance);

    /* [load-thread] Returns a plugin-side extension table for id, valid until
     * destroy(), or NULL. May itself be NULL (no extensions). */
    const void *(*get_extension)(void *instance, const char *id);
} vmm_plugin_entry_t;

/* Every plugin defines it (in C or C++), e.g.:
 *   const vmm_plugin_entry_t vmm_plugin_entry = {
 *       sizeof(vmm_plugin_entry_t), VMM_PLUGIN_ABI_MAJOR, VMM_PLUGIN_ABI_MINOR,
 *       "org.example.mydevice", "1.0.0", "My device", my_init, my_destroy, NULL };
 * This declaration gives it C linkage and default visibility, even with
 * -fvisibility=hidden; do not repeat VMM_PLUGIN_EXPORT on the definition. */
VMM_PLUGIN_EXPORT extern const vmm_plugin_entry_t vmm_plugin_entry;

/* ---- ABI 1.2: plugin state for snapshot and restore (a plugin-offered extension) ---- */
/* entry->get_extension(instance, VMM_PLUGIN_EXT_STATE) returns a vmm_plugin_state_t,
 * valid until destroy() and aligned as one (the host refuses a table that is not, as
 * it refuses an incomplete one). A host snapshotting a VM asks every loaded plugin
 * for it and refuses the snapshot, naming the plugin, when one does not offer it:
 * device state is never dropped silently (a plugin without state offers it with a
 * save of 0 bytes).
 *
 * THREADING: save and restore are called on the host's control thread while every vCPU
 * of the VM is paused or not yet started (no handler of the plugin runs concurrently);
 * a plugin's own threads (input pumps, page fetchers) keep running, so guard what they
 * share. restore is called after init() with the same config, before any vCPU runs. */
#define VMM_PLUGIN_EXT_STATE "org.vmmkit.plugin.state/1" /* vmm_plugin_state_t */

typedef struct vmm_plugin_state {
    uint32_t struct_size; /* sizeof(vmm_plugin_state_t) as the plugin was compiled */
    uint32_t version;     /* the version of the blob save() writes (the plugin's own
                           * numbering, >= 1); the host stores it beside the blob */
    void *user;           /* passed back as the first argument below */
    /* Writes the state into buffer (capacity bytes; buffer may be NULL when capacity is
     * 0). Returns 0 with *size_out = bytes written, or -ENOSPC with *size_out = the
     * bytes needed (the host retries with a buffer that large), or another -errno.
     * The host accepts at most 16 MiB. */
    int (*save)(void *user, void *buffer, uint64_t capacity, uint64_t *size_out);
    /* Replaces the instance's state with a blob a save() wrote: `length` bytes,
     * `version` as stored. Returns 0, or -EINVAL (malformed blob; the plugin checks
     * every size and count in it) or -ENOTSUP (a version it cannot read). The bytes are
     * hostile input. Saying why (both calls): the last line logged at VMM_LOG_ERROR on
     * the calling thread during a call that fails is the host's message for it. */
    int (*restore)(void *user, const void *bytes, uint64_t length, uint32_t version);
} vmm_plugin_state_t;
/* ---- end of 1.2 plugin-state additions ---- */

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* VMM_PLUGIN_H */
