/*
 * Test fixture for host services beyond exits, in two roles (scripts/build-plugins
 * builds both):
 * - default ("services"): port 0x540; a guest OUT of
 *     1: injects #PF with error code 2 and CR2 payload 0xdead000 (inject_exception);
 *     2: raises an async-PF PAGE_MISSING event for gpa 0x5000 through the async_pf/1
 *        extension and puts the verdict in RCX (set_reg);
 *     3: calls get_reg for another vCPU id and puts -errno in RCX (expects EBUSY);
 *     4: injects external interrupt 0x40 (inject_interrupt), -errno in RCX;
 *     6: raises async-PF events for vCPU 1000, of kind 99 and at an odd address through
 *        the async_pf/1 extension; RCX = the three verdicts (low byte first) and
 *        RDX = 1 if the messages were "async_pf raise: vCPU 1000 does not exist",
 *        "async_pf raise: event kind 99 is not PAGE_MISSING, PAGE_READY or KICK" and
 *        "async_pf raise: the event at 0x... is not aligned as a vmm_exit_async_pf_t
 *        must be (a multiple of 8)";
 *     5: calls set_irq_line for line 99999, line 4 with level 7, line 23 (the last
 *        IOAPIC pin) with level 0, and puts each -errno in a byte of RCX (low first);
 *   MSRs 0x4b564dfe..0x4b564dff: RDMSR reads 0x0102030405060708, WRMSR stores the
 *   value at guest-physical 0x20100; HLT: stores 0x4c54 ("HLT") at 0x20108 and
 *   declines (VMM_NOT_MINE), so the host's default still halts.
 * - ROLE_RECEIVER ("async receiver"): handles VMM_EXIT_ASYNC_PF events by setting
 *   RBX to gpa + kind on the event's vCPU.
 */
#include "vmm_plugin.h"

#include <string.h>

static const vmm_host_t *the_host; /* one instance per test VM; reset by each init */

#ifdef ROLE_RECEIVER
static vmm_verdict_t on_event(void *user, vmm_exit_t *ex)
{
    (void)user;
    if (the_host->set_reg(the_host->host_data, ex->vcpu_id, VMM_REG_RBX,
                          ex->async_pf.gpa + ex->async_pf.kind) != 0) {
        ex->message = "receiver: set_reg failed";
        return VMM_FAIL;
    }
    return VMM_HANDLED;
}
#define ROLE_CLASS VMM_EXIT_ASYNC_PF
#define ROLE_BASE 0
#define ROLE_LENGTH 0
#define ROLE_HANDLER on_event
#define ROLE_ID "org.vmmkit.test.async-receiver"
#define REGISTER_MORE(host, error_out) 0
#else
static vmm_verdict_t on_port(void *user, vmm_exit_t *ex)
{
    const vmm_host_t *h = the_host;
    uint32_t action = 0;
    (void)user;
    if (!ex->pio.is_write)
        return VMM_NOT_MINE;
    memcpy(&action, ex->pio.data, ex->pio.size < 4 ? ex->pio.size : 4);
    if (action == 1) {
        if (h->inject_exception(h->host_data, ex->vcpu_id, 14, 1, 2, 1, 0xdead000) != 0) {
            ex->message = "services: inject_exception failed";
            return VMM_FAIL;
        }
    } else if (action == 2) {
        const vmm_host_async_pf_t *apf = h->get_extension(h->host_data, VMM_EXT_HOST_ASYNC_PF);
        vmm_exit_async_pf_t ev;
        vmm_verdict_t v;
        if (apf == NULL) {
            ex->message = "services: no async_pf extension";
            return VMM_FAIL;
        }
        memset(&ev, 0, sizeof ev);
        ev.gpa = 0x5000;
        ev.size = 4096;
        ev.kind = VMM_ASYNC_PF_PAGE_MISSING;
        v = apf->raise(h->host_data, ex->vcpu_id, &ev, NULL);
        h->set_reg(h->host_data, ex->vcpu_id, VMM_REG_RCX, v);
    } else if (action == 4) {
        int rc = h->inject_interrupt(h->host_data, ex->vcpu_id, 0x40);
        h->set_reg(h->host_data, ex->vcpu_id, VMM_REG_RCX, (uint64_t)(int64_t)-rc);
    } else if (action == 6) {
        const vmm_host_async_pf_t *apf = h->get_extension(h->host_data, VMM_EXT_HOST_ASYNC_PF);
        vmm_exit_async_pf_t ev;
        static unsigned char odd[sizeof ev + 8] __attribute__((aligned(8)));
        static const char not_aligned[] = " is not aligned as a vmm_exit_async_pf_t must be (a multiple of 8)";
        const char *m1 = NULL, *m2 = NULL, *m3 = NULL;
        vmm_verdict_t v1, v2, v3;
        int same;
        if (apf == NULL) {
            ex->message = "services: no async_pf extension";
            return VMM_FAIL;
        }
        memset(&ev, 0, sizeof ev);
        ev.kind = VMM_ASYNC_PF_KICK;
        v1 = apf->raise(h->host_data, 1000, &ev, &m1);
        same = m1 && strcmp(m1, "async_pf raise: vCPU 1000 does not exist") == 0;
        ev.kind = 99;
        v2 = apf->raise(h->host_data, ex->vcpu_id, &ev, &m2);
        same = same && m2 && strcmp(m2, "async_pf raise: event kind 99 is not PAGE_MISSING, PAGE_READY or KICK") == 0;
        /* A whole, valid event one byte past an 8-byte boundary (a packed struct's field). */
        ev.kind = VMM_ASYNC_PF_KICK;
        memcpy(odd + 1, &ev, sizeof ev);
        v3 = apf->raise(h->host_data, ex->vcpu_id, (const vmm_exit_async_pf_t *)(const void *)(odd + 1), &m3);
        same = same && m3 && strncmp(m3, "async_pf raise: the event at 0x", 31) == 0
            && strlen(m3) > strlen(not_aligned) && strcmp(m3 + strlen(m3) - strlen(not_aligned), not_aligned) == 0;
        h->set_reg(h->host_data, ex->vcpu_id, VMM_REG_RCX, (uint64_t)v1 | (uint64_t)v2 << 8 | (uint64_t)v3 << 16);
        h->set_reg(h->host_data, ex->vcpu_id, VMM_REG_RDX, (uint64_t)same);
    } else if (action == 5) {
        uint64_t codes = (uint64_t)(uint8_t)-h->set_irq_line(h->host_data, 99999, 1)
            | (uint64_t)(uint8_t)-h->set_irq_line(h->host_data, 4, 7) << 8
            | (uint64_t)(uint8_t)-h->set_irq_line(h->host_data, 23, 0) << 16;
        h->set_reg(h->host_data, ex->vcpu_id, VMM_REG_RCX, codes);
    } else if (action == 3) {
        uint64_t dummy = 0;
        int rc = h->get_reg(h->host_data, ex->vcpu_id + 1, VMM_REG_RAX, &dummy);
        h->set_reg(h->host_data, ex->vcpu_id, VMM_REG_RCX, (uint64_t)(int64_t)-rc);
    }
    return VMM_HANDLED;
}
static vmm_verdict_t on_msr(void *user, vmm_exit_t *ex)
{
    (void)user;
    if (ex->msr.is_write) {
        if (the_host->write_guest(the_host->host_data, 0x20100, &ex->msr.data, 8) != 0)
            return VMM_FAIL;
    } else {
        ex->msr.data = 0x0102030405060708ull;
    }
    return VMM_HANDLED;
}

static vmm_verdict_t on_hlt(void *user, vmm_exit_t *ex)
{
    uint64_t mark = 0x4c54;
    (void)user; (void)ex;
    the_host->write_guest(the_host->host_data, 0x20108, &mark, sizeof mark);
    return VMM_NOT_MINE;
}

/* Registers the MSR and HLT handlers too (the services role only). */
static int register_more(const vmm_host_t *host, const char **error_out)
{
    vmm_handler_desc_t d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.exit_class = VMM_EXIT_MSR;
    d.base = 0x4b564dfe;
    d.length = 2;
    d.flags = VMM_HANDLER_EXCLUSIVE;
    d.handle = on_msr;
    d.name = "msr";
    if (host->register_handler(host->host_data, &d, error_out) != 0)
        return -1;
    d.exit_class = VMM_EXIT_HLT;
    d.base = 0;
    d.length = 0;
    d.flags = 0;
    d.handle = on_hlt;
    d.name = "hlt";
    return host->register_handler(host->host_data, &d, error_out);
}
#define REGISTER_MORE(host, error_out) register_more(host, error_out)
#define ROLE_CLASS VMM_EXIT_PIO
#define ROLE_BASE 0x540
#define ROLE_LENGTH 1
#define ROLE_HANDLER on_port
#define ROLE_ID "org.vmmkit.test.services"
#endif

static void *svc_init(const vmm_host_t *host, const char *config, const char **error_out)
{
    vmm_handler_desc_t d;
    (void)config;
    the_host = host;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.exit_class = ROLE_CLASS;
    d.base = ROLE_BASE;
    d.length = ROLE_LENGTH;
    d.handle = ROLE_HANDLER;
    d.name = "svc";
    if (host->register_handler(host->host_data, &d, error_out) != 0 || REGISTER_MORE(host, error_out) != 0)
        return NULL;
    return (void *)host;
}

static void svc_destroy(void *instance) { (void)instance; }

const vmm_plugin_entry_t vmm_plugin_entry = {
    sizeof(vmm_plugin_entry_t), VMM_PLUGIN_ABI_MAJOR, VMM_PLUGIN_ABI_MINOR,
    ROLE_ID, "1.0.0", "host services fixture", svc_init, svc_destroy, NULL,
};
