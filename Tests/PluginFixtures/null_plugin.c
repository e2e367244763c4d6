/*
 * The benchmark's plugin: the cheapest useful device. On one port (config port=N,
 * default 0x10) an IN reads 0 and an OUT is counted; every exit is HANDLED. With
 * mmio=ADDR it also serves one 4 KiB MMIO page the same way (a load reads 0, a store
 * is counted), with hlt=1 it also handles HLT (counted). The benchmark calls the same
 * handler code directly (Benchmarks/Sources/CPluginBench) as its baseline.
 */
#include "vmm_plugin.h"

#include <stdlib.h>
#include <string.h>

/* Two cache lines each (the adjacent-line prefetcher pairs them): two instances
 * counting on two vCPUs must not share one. */
typedef struct null_dev { _Alignas(128) uint64_t writes; } null_dev_t;

static vmm_verdict_t null_handle(void *user, vmm_exit_t *ex)
{
    null_dev_t *dev = (null_dev_t *)user;
    if (ex->pio.is_write)
        dev->writes++; /* one vCPU in the benchmark */
    else
        memset(ex->pio.data, 0, (size_t)ex->pio.size * ex->pio.count);
    return VMM_HANDLED;
}

static vmm_verdict_t null_mmio(void *user, vmm_exit_t *ex)
{
    null_dev_t *dev = (null_dev_t *)user;
    if (ex->mmio.is_write)
        dev->writes++;
    else
        memset(ex->mmio.data, 0, sizeof ex->mmio.data);
    return VMM_HANDLED;
}

static vmm_verdict_t null_hlt(void *user, vmm_exit_t *ex)
{
    (void)ex;
    ((null_dev_t *)user)->writes++;
    return VMM_HANDLED;
}

/* The value of "key=" in a comma-separated config, or `fallback`. */
static unsigned long long option(const char *config, const char *key, unsigned long long fallback)
{
    size_t n = strlen(key);
    for (const char *p = config; p != NULL && *p != '\0'; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (strncmp(p, key, n) == 0 && p[n] == '=')
            return strtoull(p + n + 1, NULL, 0);
    return fallback;
}

static int add(const vmm_host_t *host, null_dev_t *dev, uint32_t cls, uint64_t base, uint64_t length,
               vmm_verdict_t (*handle)(void *, vmm_exit_t *), const char **error_out)
{
    vmm_handler_desc_t d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.exit_class = cls;
    d.base = base;
    d.length = length;
    d.flags = VMM_HANDLER_EXCLUSIVE;
    d.handle = handle;
    d.user = dev;
    d.name = "null";
    return host->register_handler(host->host_data, &d, error_out);
}

static void *null_init(const vmm_host_t *host, const char *config, const char **error_out)
{
    null_dev_t *dev = aligned_alloc(128, sizeof(null_dev_t));
    unsigned long long port = option(config, "port", 0x10), mmio = option(config, "mmio", 0);

    if (dev == NULL) { *error_out = "null: out of memory"; return NULL; }
    dev->writes = 0;
    if (add(host, dev, VMM_EXIT_PIO, port, 1, null_handle, error_out) != 0
        || (mmio != 0 && add(host, dev, VMM_EXIT_MMIO, mmio, 4096, null_mmio, error_out) != 0)
        || (option(config, "hlt", 0) != 0 && add(host, dev, VMM_EXIT_HLT, 0, 0, null_hlt, error_out) != 0)) {
        free(dev);
        return NULL;
    }
    return dev;
}

static void null_destroy(void *instance) { free(instance); }

const vmm_plugin_entry_t vmm_plugin_entry = {
    sizeof(vmm_plugin_entry_t), VMM_PLUGIN_ABI_MAJOR, VMM_PLUGIN_ABI_MINOR,
    "org.vmmkit.bench.null", "1.0.0", "a port that reads 0 and counts writes (benchmarks)",
    null_init, null_destroy, NULL,
};
