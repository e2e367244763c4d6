/*
 * pc-testdev: QEMU's `pc-testdev` test device (hw/misc/pc-testdev.c), for test kernels
 * written against it (kvm-unit-tests style). Loaded by name: `--plugin PCTestDev`.
 *   ports 0xe0-0xe3   a 32-bit scratch register (any width; reads return what was written)
 *   port  0xe4        "flush page": a 4-byte write of a guest address; QEMU remaps that
 *                     page to flush TLBs, which has no effect a guest can observe here,
 *                     so it is accepted and dropped. Reads return 0.
 *   ports 0x2000-0x2017  IRQ lines 0-23: a byte write of v sets line n (port 0x2000 + n)
 *                     to v != 0 through KVM_IRQ_LINE, i.e. the in-kernel PIC (0-15) and
 *                     IOAPIC (0-23) pins; reads return 0. Needs the in-kernel irqchip.
 *   MMIO 0xff000000-0xff00ffff  64 KiB of scratch memory (any width up to 8 bytes).
 * Port 0xe4 is also VMMKit's typed-hypercall port (VMM_HYPERCALL_PORT), which the core
 * claims only when a loaded plugin registers a typed hypercall: loading this device
 * together with such a plugin is refused, naming both owners. Config: none. State
 * (ABI 1.2, snapshot and restore): the scratch register and the MMIO scratch memory;
 * the IRQ lines' levels live in the in-kernel irqchip, which the VM's snapshot holds.
 */
#include "vmm_plugin.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCRATCH_PORT 0xe0
#define FLUSH_PORT 0xe4
#define IRQ_PORT 0x2000
#define IRQ_LINES 24
#define IOMEM_BASE 0xff000000ull
#define IOMEM_SIZE 0x10000

typedef struct testdev {
    const vmm_host_t *host;
    pthread_mutex_t lock;
    uint8_t scratch[4];
    uint8_t iomem[IOMEM_SIZE];
    vmm_plugin_state_t state; /* ABI 1.2 state extension */
} testdev_t;

static vmm_verdict_t scratch(void *user, vmm_exit_t *ex)
{
    testdev_t *d = (testdev_t *)user;
    uint32_t off = ex->pio.port - SCRATCH_PORT;
    pthread_mutex_lock(&d->lock);
    for (uint32_t e = 0; e < ex->pio.count; e++) {
        uint8_t *data = ex->pio.data + (size_t)e * ex->pio.size;
        for (uint32_t i = 0; i < ex->pio.size; i++) {
            uint32_t at = off + i;
            if (ex->pio.is_write) {
                if (at < 4)
                    d->scratch[at] = data[i];
            } else {
                data[i] = at < 4 ? d->scratch[at] : 0xff;
            }
        }
    }
    pthread_mutex_unlock(&d->lock);
    return VMM_HANDLED;
}

static vmm_verdict_t flush_page(void *user, vmm_exit_t *ex)
{
    (void)user;
    if (!ex->pio.is_write)
        memset(ex->pio.data, 0, (size_t)ex->pio.size * ex->pio.count);
    return VMM_HANDLED;
}

static vmm_verdict_t irq_line(void *user, vmm_exit_t *ex)
{
    testdev_t *d = (testdev_t *)user;
    if (!ex->pio.is_write) {
        memset(ex->pio.data, 0, (size_t)ex->pio.size * ex->pio.count);
        return VMM_HANDLED;
    }
    for (uint32_t e = 0; e < ex->pio.count; e++) {
        const uint8_t *data = ex->pio.data + (size_t)e * ex->pio.size;
        /* Each byte of a wider write drives the next line, as QEMU's byte-wide region. */
        for (uint32_t i = 0; i < ex->pio.size; i++) {
            uint32_t line = (uint32_t)(ex->pio.port - IRQ_PORT) + i;
            if (line >= IRQ_LINES)
                break;
            int rc = d->host->set_irq_line(d->host->host_data, line, data[i] != 0);
            if (rc != 0) {
                ex->message = rc == -95 /* ENOTSUP */
                    ? "pc-testdev: IRQ lines need the in-kernel irqchip"
                    : "pc-testdev: KVM_IRQ_LINE failed";
                return VMM_FAIL;
            }
        }
    }
    return VMM_HANDLED;
}

static vmm_verdict_t iomem(void *user, vmm_exit_t *ex)
{
    testdev_t *d = (testdev_t *)user;
    uint64_t off = ex->mmio.gpa - IOMEM_BASE;
    pthread_mutex_lock(&d->lock);
    for (uint32_t i = 0; i < ex->mmio.len; i++) {
        uint64_t at = off + i;
        if (ex->mmio.is_write) {
            if (at < IOMEM_SIZE)
                d->iomem[at] = ex->mmio.data[i];
        } else {
            ex->mmio.data[i] = at < IOMEM_SIZE ? d->iomem[at] : 0xff;
        }
    }
    pthread_mutex_unlock(&d->lock);
    return VMM_HANDLED;
}

static int add(const vmm_host_t *host, uint32_t cls, uint64_t base, uint64_t len,
               vmm_verdict_t (*fn)(void *, vmm_exit_t *), void *user, const char *name,
               const char **err)
{
    vmm_handler_desc_t desc;
    memset(&desc, 0, sizeof desc);
    desc.struct_size = sizeof desc;
    desc.exit_class = cls;
    desc.base = base;
    desc.length = len;
    desc.flags = VMM_HANDLER_EXCLUSIVE;
    desc.handle = fn;
    desc.user = user;
    desc.name = name;
    return host->register_handler(host->host_data, &desc, err);
}

static void *testdev_init(const vmm_host_t *host, const char *config, const char **error_out)
{
    const char *err = NULL;
    testdev_t *d;

    if (config[0] != '\0') {
        *error_out = "pc-testdev: takes no config";
        return NULL;
    }
    if (!VMM_HAS_FIELD(host, vmm_host_t, set_irq_line)) {
        *error_out = "pc-testdev: host table too small (needs set_irq_line)";
        return NULL;
    }
    if ((d = (testdev_t *)calloc(1, sizeof *d)) == NULL) {
        *error_out = "pc-testdev: out of memory";
        return NULL;
    }
    d->host = host;
    pthread_mutex_init(&d->lock, NULL);
    if (add(host, VMM_EXIT_PIO, SCRATCH_PORT, 4, scratch, d, "pc-testdev scratch", &err) != 0 ||
        add(host, VMM_EXIT_PIO, FLUSH_PORT, 1, flush_page, d, "pc-testdev flush-page", &err) != 0 ||
        add(host, VMM_EXIT_PIO, IRQ_PORT, IRQ_LINES, irq_line, d, "pc-testdev irq", &err) != 0 ||
        add(host, VMM_EXIT_MMIO, IOMEM_BASE, IOMEM_SIZE, iomem, d, "pc-testdev iomem", &err) != 0) {
        pthread_mutex_destroy(&d->lock);
        free(d);
        *error_out = err ? err : "pc-testdev: cannot register its ranges";
        return NULL;
    }
    return d;
}

static void testdev_destroy(void *instance)
{
    testdev_t *d = (testdev_t *)instance;
    pthread_mutex_destroy(&d->lock);
    free(d);
}

/* ---- ABI 1.2 state (snapshot/restore), version 1: the 4 scratch register bytes, then
 * the 64 KiB of MMIO scratch memory. Any contents are valid (a guest may write any
 * bytes there), so a blob of the right version and length is taken whole. Called on the
 * control thread, vCPUs paused. */
#define TESTDEV_STATE_SIZE (4u + IOMEM_SIZE)

static int state_save(void *user, void *buffer, uint64_t capacity, uint64_t *size_out)
{
    testdev_t *d = (testdev_t *)user;

    *size_out = TESTDEV_STATE_SIZE;
    if (capacity < TESTDEV_STATE_SIZE)
        return -ENOSPC;
    pthread_mutex_lock(&d->lock);
    memcpy(buffer, d->scratch, 4);
    memcpy((uint8_t *)buffer + 4, d->iomem, IOMEM_SIZE);
    pthread_mutex_unlock(&d->lock);
    return 0;
}

static int state_restore(void *user, const void *bytes, uint64_t length, uint32_t version)
{
    testdev_t *d = (testdev_t *)user;

    char why[96];

    if (version != 1)
        return -ENOTSUP;
    if (length != TESTDEV_STATE_SIZE) {
        /* A line logged at error level during the call is the host's message for it. */
        snprintf(why, sizeof why, "pc-testdev: a state of %llu bytes; version 1 has %u",
                 (unsigned long long)length, TESTDEV_STATE_SIZE);
        d->host->log(d->host->host_data, VMM_LOG_ERROR, why);
        return -EINVAL;
    }
    pthread_mutex_lock(&d->lock);
    memcpy(d->scratch, bytes, 4);
    memcpy(d->iomem, (const uint8_t *)bytes + 4, IOMEM_SIZE);
    pthread_mutex_unlock(&d->lock);
    return 0;
}

static const void *testdev_get_extension(void *instance, const char *id)
{
    testdev_t *d = (testdev_t *)instance;

    if (strcmp(id, VMM_PLUGIN_EXT_STATE) != 0)
        return NULL;
    memset(&d->state, 0, sizeof d->state);
    d->state.struct_size = sizeof d->state;
    d->state.version = 1;
    d->state.user = d;
    d->state.save = state_save;
    d->state.restore = state_restore;
    return &d->state;
}

const vmm_plugin_entry_t vmm_plugin_entry = {
    sizeof(vmm_plugin_entry_t),
    VMM_PLUGIN_ABI_MAJOR,
    VMM_PLUGIN_ABI_MINOR,
    "org.vmmkit.pc-testdev",
    "1.0.0",
    "QEMU's pc-testdev: scratch ports, flush page, IRQ lines, MMIO scratch",
    testdev_init,
    testdev_destroy,
    testdev_get_extension, /* ABI 1.2 state */
};
