/*
 * FROZEN with vmm_plugin.h v1.0 beside it: never edit either file. This plugin is
 * compiled against the first released header and must keep loading and working in
 * every 1.x host (Tests/VMMKitTests/PluginCompatibilityTests.swift). If it stops
 * working, the ABI broke: fix the host, not this file.
 *
 * Device on port 0x520: OUT stores the value; IN returns it plus one. On IN it also
 * reads RBX of the calling vCPU (get_reg) and stores it at guest-physical 0x20100
 * (write_guest).
 */
#include "vmm_plugin.h"

#include <stdlib.h>
#include <string.h>

typedef struct compat {
    const vmm_host_t *host;
    uint32_t value; /* one vCPU in the test; a real device would lock */
} compat_t;

static vmm_verdict_t compat_handle(void *user, vmm_exit_t *ex)
{
    compat_t *c = (compat_t *)user;
    uint64_t rbx = 0;
    uint32_t v;

    if (ex->exit_class != VMM_EXIT_PIO || ex->pio.size != 4)
        return VMM_NOT_MINE;
    if (ex->pio.is_write) {
        memcpy(&c->value, ex->pio.data, 4);
        return VMM_HANDLED;
    }
    if (c->host->get_reg(c->host->host_data, ex->vcpu_id, VMM_REG_RBX, &rbx) != 0) {
        ex->message = "compat: get_reg(RBX) failed";
        return VMM_FAIL;
    }
    if (c->host->write_guest(c->host->host_data, 0x20100, &rbx, sizeof rbx) != 0) {
        ex->message = "compat: write_guest failed";
        return VMM_FAIL;
    }
    v = c->value + 1;
    memcpy(ex->pio.data, &v, 4);
    return VMM_HANDLED;
}

static void *compat_init(const vmm_host_t *host, const char *config, const char **error_out)
{
    compat_t *c;
    vmm_handler_desc_t d;

    (void)config;
    if (host->abi_major != VMM_PLUGIN_ABI_MAJOR) {
        *error_out = "compat: unexpected host ABI major";
        return NULL;
    }
    c = (compat_t *)calloc(1, sizeof *c);
    if (c == NULL) {
        *error_out = "compat: out of memory";
        return NULL;
    }
    c->host = host;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.exit_class = VMM_EXIT_PIO;
    d.base = 0x520;
    d.length = 1;
    d.flags = VMM_HANDLER_EXCLUSIVE;
    d.handle = compat_handle;
    d.user = c;
    d.name = "compat";
    if (host->register_handler(host->host_data, &d, error_out) != 0) {
        free(c);
        return NULL;
    }
    return c;
}

static void compat_destroy(void *instance) { free(instance); }

const vmm_plugin_entry_t vmm_plugin_entry = {
    sizeof(vmm_plugin_entry_t), 1, 0,
    "org.vmmkit.test.compat-v1-0", "1.0.0", "compiled against the frozen v1.0 header",
    compat_init, compat_destroy, NULL,
};
