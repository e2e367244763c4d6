/*
 * Test fixture for the host extensions coalesced_mmio/1 and ioeventfd/1, written
 * against vmm_plugin.h only. Everything it observes it writes into guest RAM (the
 * tests read it there). Config "mode=...":
 *   doorbell   ioeventfds on port 0x30 (4 bytes, any value) and MMIO 0xd0000100
 *              (2 bytes, datamatch 0x77); notify() stores the running counts at
 *              0x20100 / 0x20108; other writes to MMIO 0xd0000000+0x1000 exit to a
 *              handler that counts them at 0x20110 and keeps the last value at 0x20118.
 *   coalesce   a handler for MMIO 0xd0000000 (1 byte) appending each written byte at
 *              0x30000 (count at 0x20120), coalesced through the extension.
 *   uncovered  asks to coalesce 0xe0000000, which none of its handlers covers.
 *   irq        binds an irqfd to GSI 4; a write to port 0x10 raises it.
 *   bell-e4    an ioeventfd on port 0xe4 (4 bytes), the typed-hypercall port.
 */
#include "vmm_plugin.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct fp {
    const vmm_host_t *host;
    uint64_t pio_rings, mmio_rings, other_writes, appended;
    int irqfd;
} fp_t;

static void put64(fp_t *d, uint64_t gpa, uint64_t v) { d->host->write_guest(d->host->host_data, gpa, &v, 8); }

/* [any-thread] on the host's notifier thread, one at a time. */
static void pio_rang(void *user, uint64_t n) { fp_t *d = user; d->pio_rings += n; put64(d, 0x20100, d->pio_rings); }
static void mmio_rang(void *user, uint64_t n) { fp_t *d = user; d->mmio_rings += n; put64(d, 0x20108, d->mmio_rings); }

static vmm_verdict_t other_write(void *user, vmm_exit_t *ex)
{
    fp_t *d = user;
    uint64_t v = 0;
    memcpy(&v, ex->mmio.data, ex->mmio.len);
    if (ex->mmio.is_write) { d->other_writes++; put64(d, 0x20110, d->other_writes); put64(d, 0x20118, v); }
    return VMM_HANDLED;
}

static vmm_verdict_t append(void *user, vmm_exit_t *ex)
{
    fp_t *d = user;
    if (!ex->mmio.is_write) return VMM_HANDLED;
    d->host->write_guest(d->host->host_data, 0x30000 + d->appended, ex->mmio.data, 1);
    d->appended++;
    put64(d, 0x20120, d->appended);
    return VMM_HANDLED;
}

static vmm_verdict_t ready(void *user, vmm_exit_t *ex)
{
    fp_t *d = user;
    uint64_t one = 1;
    (void)ex;
    return write(d->irqfd, &one, 8) == 8 ? VMM_HANDLED : VMM_FAIL;
}

static int handler(fp_t *d, uint32_t cls, uint64_t base, uint64_t len,
                   vmm_verdict_t (*fn)(void *, vmm_exit_t *), const char **err)
{
    vmm_handler_desc_t desc;
    memset(&desc, 0, sizeof desc);
    desc.struct_size = sizeof desc;
    desc.exit_class = cls;
    desc.base = base;
    desc.length = len;
    desc.flags = VMM_HANDLER_EXCLUSIVE;
    desc.handle = fn;
    desc.user = d;
    desc.name = "fastpath";
    return d->host->register_handler(d->host->host_data, &desc, err);
}

static void *fp_init(const vmm_host_t *host, const char *config, const char **err)
{
    fp_t *d = calloc(1, sizeof *d);
    const vmm_host_ioeventfd_t *ioe = host->get_extension(host->host_data, VMM_EXT_HOST_IOEVENTFD);
    const vmm_host_coalesced_mmio_t *co = host->get_extension(host->host_data, VMM_EXT_HOST_COALESCED_MMIO);
    int rc = 0;

    if (d == NULL) { *err = "fastpath: out of memory"; return NULL; }
    d->host = host;
    d->irqfd = -1;
    if (ioe == NULL || co == NULL) { *err = "fastpath: the host offers no coalesced_mmio/1 or ioeventfd/1"; free(d); return NULL; }
    if (strcmp(config, "mode=doorbell") == 0) {
        rc = handler(d, VMM_EXIT_MMIO, 0xd0000000, 0x1000, other_write, err);
        if (rc == 0) rc = ioe->add(host->host_data, VMM_SPACE_PIO, 0x30, 4, 0, 0, pio_rang, d, err);
        if (rc == 0) rc = ioe->add(host->host_data, VMM_SPACE_MMIO, 0xd0000100, 2, VMM_IOEVENTFD_DATAMATCH, 0x77,
                                   mmio_rang, d, err);
    } else if (strcmp(config, "mode=coalesce") == 0) {
        rc = handler(d, VMM_EXIT_MMIO, 0xd0000000, 1, append, err);
        if (rc == 0) rc = co->add(host->host_data, VMM_SPACE_MMIO, 0xd0000000, 1, err);
    } else if (strcmp(config, "mode=uncovered") == 0) {
        rc = handler(d, VMM_EXIT_MMIO, 0xd0000000, 1, append, err);
        if (rc == 0) rc = co->add(host->host_data, VMM_SPACE_MMIO, 0xe0000000, 1, err);
    } else if (strcmp(config, "mode=bell-e4") == 0) {
        rc = ioe->add(host->host_data, VMM_SPACE_PIO, 0xe4, 4, 0, 0, pio_rang, d, err);
    } else if (strcmp(config, "mode=irq") == 0) {
        rc = ioe->add_irqfd(host->host_data, 4, &d->irqfd, err);
        if (rc == 0) rc = handler(d, VMM_EXIT_PIO, 0x10, 1, ready, err);
    } else {
        *err = "fastpath: config must be mode=doorbell|coalesce|uncovered|irq|bell-e4";
        rc = -EINVAL;
    }
    if (rc != 0) { free(d); return NULL; } /* *err is the host's message */
    return d;
}

/* The host closes the irqfd itself, after this. */
static void fp_destroy(void *instance) { free(instance); }

const vmm_plugin_entry_t vmm_plugin_entry = {
    sizeof(vmm_plugin_entry_t), VMM_PLUGIN_ABI_MAJOR, VMM_PLUGIN_ABI_MINOR,
    "org.vmmkit.test.fastpath", "1.0.0", "exercises the coalesced_mmio/1 and ioeventfd/1 host extensions",
    fp_init, fp_destroy, NULL,
};
