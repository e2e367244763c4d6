/*
 * Test fixture for ABI 1.1's vcpu/1 and pager/1 extensions. A thread started at init
 * kicks vCPU 0 every millisecond (kick is [any-thread]) while the guest spins. The
 * KICK record, raised on the vCPU's thread, checks the [vcpu-thread] services and
 * stops the VM with an exit code holding one bit per check that passed:
 *   0x01 pending_events reports nothing queued
 *   0x02 inject_nmi returns 0
 *   0x04 pending_events then reports VMM_EVENT_NMI
 *   0x08 pager/1 install_page answers -ENODEV (no demand pager in this VM)
 *   0x10 kick of a vCPU that does not exist answered -EINVAL (checked at init)
 *   0x20 the record is a KICK for vCPU 0 with gpa 0
 * (The VM stops before the NMI is delivered: the spinning guest has no IDT.)
 */
#define _GNU_SOURCE
#include "vmm_plugin.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

struct kicker {
    const vmm_host_t *host;
    const vmm_host_vcpu_t *vcpu;
    const vmm_host_pager_t *pager;
    pthread_t thread;
    atomic_int done;
    uint32_t bits;
};

static void *kick_loop(void *arg)
{
    struct kicker *k = arg;
    while (!atomic_load(&k->done)) {
        k->vcpu->kick(k->host->host_data, 0);
        usleep(1000);
    }
    return NULL;
}

static vmm_verdict_t on_event(void *user, vmm_exit_t *ex)
{
    struct kicker *k = user;
    const vmm_host_t *h = k->host;
    uint32_t before = 99, after = 0, bits = k->bits;
    if (ex->async_pf.kind != VMM_ASYNC_PF_KICK)
        return VMM_NOT_MINE;
    if (atomic_exchange(&k->done, 1))
        return VMM_HANDLED; /* a later kick that was already on its way */
    if (ex->vcpu_id == 0 && ex->async_pf.gpa == 0)
        bits |= 0x20;
    if (k->vcpu->pending_events(h->host_data, ex->vcpu_id, &before) == 0 && before == 0)
        bits |= 0x01;
    if (k->vcpu->inject_nmi(h->host_data, ex->vcpu_id) == 0)
        bits |= 0x02;
    if (k->vcpu->pending_events(h->host_data, ex->vcpu_id, &after) == 0 && (after & VMM_EVENT_NMI))
        bits |= 0x04;
    if (k->pager->install_page(h->host_data, 0x1000) == -ENODEV)
        bits |= 0x08;
    h->request_stop(h->host_data, -1, (int32_t)bits, "kicker done");
    return VMM_HANDLED;
}

static void *kicker_init(const vmm_host_t *host, const char *config, const char **error_out)
{
    static struct kicker k; /* one VM per test */
    vmm_handler_desc_t d;
    (void)config;
    memset(&k, 0, sizeof k);
    k.host = host;
    k.vcpu = host->get_extension(host->host_data, VMM_EXT_HOST_VCPU);
    k.pager = host->get_extension(host->host_data, VMM_EXT_HOST_PAGER);
    if (k.vcpu == NULL || k.pager == NULL || !VMM_HAS_FIELD(k.vcpu, vmm_host_vcpu_t, set_cpuid_bits)) {
        *error_out = "kicker: the host lacks vcpu/1 or pager/1";
        return NULL;
    }
    if (k.vcpu->kick(host->host_data, 99) == -EINVAL)
        k.bits |= 0x10;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.exit_class = VMM_EXIT_ASYNC_PF;
    d.handle = on_event;
    d.user = &k;
    d.name = "kicker";
    if (host->register_handler(host->host_data, &d, error_out) != 0)
        return NULL;
    if (pthread_create(&k.thread, NULL, kick_loop, &k) != 0) {
        *error_out = "kicker: pthread_create failed";
        return NULL;
    }
    return &k;
}

static void kicker_destroy(void *instance)
{
    struct kicker *k = instance;
    atomic_store(&k->done, 1);
    pthread_join(k->thread, NULL);
}

const vmm_plugin_entry_t vmm_plugin_entry = {
    sizeof(vmm_plugin_entry_t), VMM_PLUGIN_ABI_MAJOR, VMM_PLUGIN_ABI_MINOR,
    "org.vmmkit.test.kicker", "1.0.0", "vcpu/1 and pager/1 fixture", kicker_init, kicker_destroy, NULL,
};
