/*
 * FROZEN with vmm_plugin.h v1.1 beside it: never edit either file. This plugin is
 * compiled against the header as ABI 1.1 was released and must keep loading and working
 * in every 1.x host (Tests/VMMKitTests/PluginCompatibilityTests.swift). If it stops
 * working, the ABI broke: fix the host, not this file.
 *
 * A careless 1.1 memory-fault plugin: one whole-space handler that zero-fills the page
 * of gpa without looking at `annotated` (as Plugins/MemoryFault did under 1.1). It
 * answers VMM_NOT_MINE when write_guest refuses the page.
 */
#include "vmm_plugin.h"

#include <stdlib.h>
#include <string.h>

static vmm_verdict_t compat_handle(void *user, vmm_exit_t *ex)
{
    const vmm_host_t *host = (const vmm_host_t *)user;
    static __thread unsigned char zeros[4096];

    if (ex->exit_class != VMM_EXIT_MEMORY_FAULT)
        return VMM_NOT_MINE;
    if (host->write_guest(host->host_data, ex->memory_fault.gpa & ~(uint64_t)4095, zeros, sizeof zeros) != 0)
        return VMM_NOT_MINE;
    return VMM_HANDLED;
}

static void *compat_init(const vmm_host_t *host, const char *config, const char **error_out)
{
    vmm_handler_desc_t d;

    (void)config;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.exit_class = VMM_EXIT_MEMORY_FAULT;
    d.base = 0;
    d.length = 0; /* the whole space */
    d.handle = compat_handle;
    d.user = (void *)host;
    d.name = "careless-zero-fill";
    if (host->register_handler(host->host_data, &d, error_out) != 0)
        return NULL;
    return (void *)host;
}

static void compat_destroy(void *instance)
{
    (void)instance;
}

const vmm_plugin_entry_t vmm_plugin_entry = {
    sizeof(vmm_plugin_entry_t), VMM_PLUGIN_ABI_MAJOR, VMM_PLUGIN_ABI_MINOR,
    "org.vmmkit.test.compat-v1-1", "1.1.0", "a v1.1 memory-fault plugin, frozen",
    compat_init, compat_destroy, NULL,
};
