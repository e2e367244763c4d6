/*
 * Test fixture for the run loop's direct plugin calls (PluginHotCall): two handlers
 * share one port and one MMIO page (not exclusive, priorities 9 and 1), and one more
 * watches HLT, so that priority order, VMM_NOT_MINE fall-through and VMM_FAIL are seen
 * by a real guest. Shared state, one instance per VM:
 * - port 0x5e0, priority 9 ("first"): OUT 1 declines, OUT 2 is counted, OUT 3 fails
 *   ("chain: refused 3"); IN declines.
 * - port 0x5e0, priority 1 ("second"): OUT keeps the value; IN reads
 *   (hlts << 6) | (first's OUTs << 4) | the last value kept.
 * - MMIO 0xd0000000 + 4 KiB, priority 9: a store keeps the value; a load declines.
 *   Priority 1: a load reads the kept value + 1; a store fails (it must never see one).
 * - HLT, priority 0: counted, declined (whatever the host registers after it decides).
 */
#include "vmm_plugin.h"

#include <stdlib.h>
#include <string.h>

typedef struct chain { uint64_t first_outs, last, stored, hlts; } chain_t;

static vmm_verdict_t first_pio(void *user, vmm_exit_t *ex)
{
    chain_t *c = user;
    if (!ex->pio.is_write || ex->pio.data[0] == 1)
        return VMM_NOT_MINE;
    if (ex->pio.data[0] == 3) {
        ex->message = "chain: refused 3";
        return VMM_FAIL;
    }
    c->first_outs++;
    return VMM_HANDLED;
}

static vmm_verdict_t second_pio(void *user, vmm_exit_t *ex)
{
    chain_t *c = user;
    if (ex->pio.is_write)
        c->last = ex->pio.data[0];
    else
        ex->pio.data[0] = (uint8_t)((c->hlts << 6) | (c->first_outs << 4) | c->last);
    return VMM_HANDLED;
}

static vmm_verdict_t first_mmio(void *user, vmm_exit_t *ex)
{
    chain_t *c = user;
    if (!ex->mmio.is_write)
        return VMM_NOT_MINE;
    c->stored = 0;
    memcpy(&c->stored, ex->mmio.data, ex->mmio.len);
    return VMM_HANDLED;
}

static vmm_verdict_t second_mmio(void *user, vmm_exit_t *ex)
{
    chain_t *c = user;
    uint64_t value = c->stored + 1;
    if (ex->mmio.is_write) {
        ex->message = "chain: the low-priority MMIO handler saw a store";
        return VMM_FAIL;
    }
    memcpy(ex->mmio.data, &value, sizeof value);
    return VMM_HANDLED;
}

static vmm_verdict_t watch_hlt(void *user, vmm_exit_t *ex)
{
    (void)ex;
    ((chain_t *)user)->hlts++;
    return VMM_NOT_MINE;
}

static int add(const vmm_host_t *host, chain_t *c, uint32_t cls, uint64_t base, uint64_t length, int32_t priority,
               vmm_verdict_t (*handle)(void *, vmm_exit_t *), const char *name, const char **error_out)
{
    vmm_handler_desc_t d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.exit_class = cls;
    d.base = base;
    d.length = length;
    d.priority = priority;
    d.handle = handle;
    d.user = c;
    d.name = name;
    return host->register_handler(host->host_data, &d, error_out);
}

static void *chain_init(const vmm_host_t *host, const char *config, const char **error_out)
{
    chain_t *c = calloc(1, sizeof *c);
    (void)config;
    if (c == NULL) { *error_out = "chain: out of memory"; return NULL; }
    if (add(host, c, VMM_EXIT_PIO, 0x5e0, 1, 1, second_pio, "second", error_out) != 0
        || add(host, c, VMM_EXIT_PIO, 0x5e0, 1, 9, first_pio, "first", error_out) != 0
        || add(host, c, VMM_EXIT_MMIO, 0xd0000000, 4096, 1, second_mmio, "second-mmio", error_out) != 0
        || add(host, c, VMM_EXIT_MMIO, 0xd0000000, 4096, 9, first_mmio, "first-mmio", error_out) != 0
        || add(host, c, VMM_EXIT_HLT, 0, 0, 0, watch_hlt, "hlt-watch", error_out) != 0) {
        free(c);
        return NULL;
    }
    return c;
}

static void chain_destroy(void *instance) { free(instance); }

const vmm_plugin_entry_t vmm_plugin_entry = {
    sizeof(vmm_plugin_entry_t), VMM_PLUGIN_ABI_MAJOR, VMM_PLUGIN_ABI_MINOR,
    "org.vmmkit.test.chain", "1.0.0", "two devices sharing ranges by priority (tests)",
    chain_init, chain_destroy, NULL,
};
