#include "vmm_plugin.h"

// doc-sample: Plugins/README.md #3
static uint64_t add(void *user, uint64_t a, uint32_t b) { (void)user; return a + b; }

static void *adder_init(const vmm_host_t *host, const char *config, const char **error_out)
{
    const vmm_host_hypercall_t *hc = host->get_extension(host->host_data, VMM_EXT_HOST_HYPERCALL);
    (void)config;
    if (hc == NULL || hc->register_hypercall(host->host_data, 7, "u64(u64, u32)",
                                             (void (*)(void))add, NULL, error_out) != 0)
        return NULL;
    return (void *)hc; /* no state of its own: any non-NULL instance pointer */
}
// doc-sample: end

void *(*const adder_init_for_tests)(const vmm_host_t *, const char *, const char **) = adder_init;
