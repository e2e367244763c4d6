/*
 * Test fixture (libMisalignedOut.so): every host service that stores or reads plain
 * values through a pointer of the plugin's gets one at an odd address, as a packed
 * struct's field would be, inside a buffer of 0xa5 guard bytes that must stay intact.
 * Needs a VM with an in-kernel irqchip (add_irqfd) and a host offering thread/1.
 *
 * init: register_handler, route_msrs, set_cpuid_bits, allow_syscall, coalesced_mmio
 * add, add_irqfd and register_hypercall each fail once on purpose, with error_out odd:
 * the message must be the host's. route_msrs gets MSRs 0x4b564d90 and 0x4b564d91 as an
 * odd array, add_irqfd an odd fd_out (both succeed). Any check that fails fails init,
 * naming it.
 * MSRs 0x4b564d90..0x4b564d91: RDMSR reads (index << 16) | 0x600d.
 * Port 0x550, a guest OUT: get_reg(RBX) into an odd slot -> RSI; pending_events ->
 * RDI; start_thread with an odd thread_out, joined -> R8 = the thread's result 0x5a;
 * an async-PF raise of kind 99 with an odd message_out -> R9 = 1 if it answered
 * VMM_FAIL with the host's message; RDX = 1 if every guard byte is intact.
 */
#include "vmm_plugin.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define MSR_BASE 0x4b564d90u

typedef struct { unsigned char b[32]; } __attribute__((aligned(16))) slot_t;

/* The odd address in the middle of the guard bytes. */
static void *slot_open(slot_t *s) { memset(s->b, 0xa5, sizeof s->b); return s->b + 1; }

/* Whether only the `size` bytes at the odd address changed. */
static int slot_guarded(const slot_t *s, size_t size)
{
    for (size_t i = 0; i < sizeof s->b; i++)
        if ((i < 1 || i >= 1 + size) && s->b[i] != 0xa5)
            return 0;
    return 1;
}

/* Whether the call stored a message containing `needle` at the odd address, and nothing more. */
static int slot_message(const slot_t *s, const char *needle)
{
    const char *message;
    memcpy(&message, s->b + 1, sizeof message);
    return slot_guarded(s, sizeof message) && message != NULL && strstr(message, needle) != NULL;
}

struct instance { const vmm_host_t *host; };

static vmm_verdict_t on_msr(void *user, vmm_exit_t *ex)
{
    (void)user;
    if (ex->msr.is_write)
        return VMM_NOT_MINE;
    ex->msr.data = ((uint64_t)ex->msr.index << 16) | 0x600d;
    return VMM_HANDLED;
}

static void *thread_body(void *arg) { return arg; }

static vmm_verdict_t on_port(void *user, vmm_exit_t *ex)
{
    const vmm_host_t *h = ((struct instance *)user)->host;
    const vmm_host_thread_t *threads = h->get_extension(h->host_data, VMM_EXT_HOST_THREAD);
    const vmm_host_async_pf_t *apf = h->get_extension(h->host_data, VMM_EXT_HOST_ASYNC_PF);
    const vmm_host_vcpu_t *vcpu = h->get_extension(h->host_data, VMM_EXT_HOST_VCPU);
    slot_t s;
    uint64_t value = 0, tid = 0;
    uint32_t events = 0;
    void *joined = NULL;
    int guarded = 1, told = 0;
    if (threads == NULL || apf == NULL || vcpu == NULL) {
        ex->message = "misaligned: no thread/1, async_pf/1 or vcpu/1 extension";
        return VMM_FAIL;
    }
    if (h->get_reg(h->host_data, ex->vcpu_id, VMM_REG_RBX, slot_open(&s)) != 0) {
        ex->message = "misaligned: get_reg failed";
        return VMM_FAIL;
    }
    memcpy(&value, s.b + 1, sizeof value);
    guarded &= slot_guarded(&s, sizeof value);
    if (vcpu->pending_events(h->host_data, ex->vcpu_id, slot_open(&s)) != 0) {
        ex->message = "misaligned: pending_events failed";
        return VMM_FAIL;
    }
    memcpy(&events, s.b + 1, sizeof events);
    guarded &= slot_guarded(&s, sizeof events);
    if (threads->start_thread(h->host_data, thread_body, (void *)0x5a, slot_open(&s)) != 0) {
        ex->message = "misaligned: start_thread failed";
        return VMM_FAIL;
    }
    memcpy(&tid, s.b + 1, sizeof tid);
    guarded &= slot_guarded(&s, sizeof tid);
    if (pthread_join((pthread_t)tid, &joined) != 0) {
        ex->message = "misaligned: the thread_out start_thread stored does not join";
        return VMM_FAIL;
    }
    {
        vmm_exit_async_pf_t event;
        memset(&event, 0, sizeof event);
        event.kind = 99;
        told = apf->raise(h->host_data, ex->vcpu_id, &event, slot_open(&s)) == VMM_FAIL &&
               slot_message(&s, "async_pf raise: event kind 99 is not PAGE_MISSING, PAGE_READY or KICK");
    }
    h->set_reg(h->host_data, ex->vcpu_id, VMM_REG_RSI, value);
    h->set_reg(h->host_data, ex->vcpu_id, VMM_REG_RDI, events);
    h->set_reg(h->host_data, ex->vcpu_id, VMM_REG_R8, (uint64_t)(uintptr_t)joined);
    h->set_reg(h->host_data, ex->vcpu_id, VMM_REG_R9, (uint64_t)told);
    h->set_reg(h->host_data, ex->vcpu_id, VMM_REG_RDX, (uint64_t)guarded);
    return VMM_HANDLED;
}

static int add(const vmm_host_t *h, uint32_t cls, uint64_t base, uint64_t length,
               vmm_verdict_t (*handle)(void *, vmm_exit_t *), void *user, const char **error_out)
{
    vmm_handler_desc_t d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.exit_class = cls;
    d.base = base;
    d.length = length;
    d.handle = handle;
    d.user = user;
    return h->register_handler(h->host_data, &d, error_out);
}

#define CHECK(cond, what) do { if (!(cond)) { *error_out = "misaligned: " what; free(in); return NULL; } } while (0)

static void *fixture_init(const vmm_host_t *h, const char *config, const char **error_out)
{
    const vmm_host_vcpu_t *vcpu = h->get_extension(h->host_data, VMM_EXT_HOST_VCPU);
    const vmm_host_seccomp_t *seccomp = h->get_extension(h->host_data, VMM_EXT_HOST_SECCOMP);
    const vmm_host_coalesced_mmio_t *coalesced = h->get_extension(h->host_data, VMM_EXT_HOST_COALESCED_MMIO);
    const vmm_host_ioeventfd_t *ioeventfd = h->get_extension(h->host_data, VMM_EXT_HOST_IOEVENTFD);
    const vmm_host_hypercall_t *hypercall = h->get_extension(h->host_data, VMM_EXT_HOST_HYPERCALL);
    struct instance *in = calloc(1, sizeof *in);
    static const unsigned char msrs[2 * sizeof(uint32_t) + 1] = {
        0, 0x90, 0x4d, 0x56, 0x4b, 0x91, 0x4d, 0x56, 0x4b }; /* MSR_BASE, MSR_BASE + 1 from byte 1 */
    slot_t s;
    int fd = -1;
    (void)config;
    if (in == NULL) { *error_out = "misaligned: out of memory"; return NULL; }
    in->host = h;
    CHECK(vcpu && seccomp && coalesced && ioeventfd && hypercall, "a host extension is missing");
    CHECK(add(h, VMM_EXIT_PIO, 0x550, 0, on_port, in, slot_open(&s)) == -EINVAL &&
          slot_message(&s, "range at 0x550 has length 0"), "register_handler's error_out");
    CHECK(add(h, VMM_EXIT_PIO, 0x550, 1, on_port, in, slot_open(&s)) == 0 && slot_guarded(&s, 0),
          "register_handler wrote error_out on success");
    CHECK(add(h, VMM_EXIT_MSR, MSR_BASE, 2, on_msr, in, NULL) == 0, "MSR handler refused");
    CHECK(vcpu->route_msrs(h->host_data, (const uint32_t *)(const void *)(msrs + 1), 2, NULL) == 0,
          "route_msrs of an odd array");
    CHECK(vcpu->route_msrs(h->host_data, (const uint32_t *)(const void *)(msrs + 1), 0, slot_open(&s)) == -EINVAL &&
          slot_message(&s, "route_msrs got no MSRs"), "route_msrs' error_out");
    CHECK(vcpu->set_cpuid_bits(h->host_data, 1, 0, 9, 0, 0, slot_open(&s)) == -EINVAL &&
          slot_message(&s, "register 9 is not VMM_CPUID_EAX..EDX"), "set_cpuid_bits' error_out");
    CHECK(seccomp->allow_syscall(h->host_data, 5000, slot_open(&s)) == -EINVAL &&
          slot_message(&s, "5000 is not an x86_64 system call number"), "allow_syscall's error_out");
    CHECK(coalesced->add(h->host_data, VMM_SPACE_PIO, 0x560, 1, slot_open(&s)) == -EINVAL &&
          slot_message(&s, "is not covered by one of this plugin's handlers"), "coalesced_mmio add's error_out");
    CHECK(ioeventfd->add_irqfd(h->host_data, 4, slot_open(&s), NULL) == 0, "add_irqfd with an odd fd_out");
    memcpy(&fd, s.b + 1, sizeof fd);
    CHECK(slot_guarded(&s, sizeof fd) && fcntl(fd, F_GETFD) != -1, "add_irqfd's fd_out");
    CHECK(ioeventfd->add_irqfd(h->host_data, 99, &fd, (const char **)slot_open(&s)) == -EINVAL &&
          slot_message(&s, "add_irqfd:"), "add_irqfd's error_out");
    CHECK(hypercall->register_hypercall(h->host_data, 7, "u64(nonsense)", (void (*)(void))thread_body, NULL,
                                        slot_open(&s)) == -EINVAL &&
          slot_message(&s, "hypercall 7:"), "register_hypercall's error_out");
    return in;
}

static void fixture_destroy(void *instance) { free(instance); }

const vmm_plugin_entry_t vmm_plugin_entry = {
    sizeof(vmm_plugin_entry_t), VMM_PLUGIN_ABI_MAJOR, VMM_PLUGIN_ABI_MINOR,
    "org.vmmkit.test.misaligned-out", "1.0.0", "odd out-pointers for every host service",
    fixture_init, fixture_destroy, NULL };
