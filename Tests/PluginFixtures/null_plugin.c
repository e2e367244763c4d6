/*
 * The benchmark's plugin: the cheapest useful device. On one port (config port=N,
 * default 0x10) an IN reads 0 and an OUT is counted; every exit is HANDLED. The
 * benchmark calls the same handler code directly (Benchmarks/Sources/CPluginBench)
 * as its baseline.
 */
#include "vmm_plugin.h"

#include <stdlib.h>
#include <string.h>

typedef struct null_dev { uint64_t writes; } null_dev_t;

static vmm_verdict_t null_handle(void *user, vmm_exit_t *ex)
{
    null_dev_t *dev = (null_dev_t *)user;
    if (ex->pio.is_write)
        dev->writes++; /* one vCPU in the benchmark */
    else
        memset(ex->pio.data, 0, (size_t)ex->pio.size * ex->pio.count);
    return VMM_HANDLED;
}

static void *null_init(const vmm_host_t *host, const char *config, const char **error_out)
{
    null_dev_t *dev = calloc(1, sizeof *dev);
    vmm_handler_desc_t d;
    unsigned long port = 0x10;

    if (strncmp(config, "port=", 5) == 0)
        port = strtoul(config + 5, NULL, 0);
    if (dev == NULL) { *error_out = "null: out of memory"; return NULL; }
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.exit_class = VMM_EXIT_PIO;
    d.base = port;
    d.length = 1;
    d.flags = VMM_HANDLER_EXCLUSIVE;
    d.handle = null_handle;
    d.user = dev;
    d.name = "null";
    if (host->register_handler(host->host_data, &d, error_out) != 0) { free(dev); return NULL; }
    return dev;
}

static void null_destroy(void *instance) { free(instance); }

const vmm_plugin_entry_t vmm_plugin_entry = {
    sizeof(vmm_plugin_entry_t), VMM_PLUGIN_ABI_MAJOR, VMM_PLUGIN_ABI_MINOR,
    "org.vmmkit.bench.null", "1.0.0", "a port that reads 0 and counts writes (benchmarks)",
    null_init, null_destroy, NULL,
};
