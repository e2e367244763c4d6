/* The exported descriptor of the AsyncPF Swift plugin (see vmm_plugin_swift.h: Swift
 * cannot define this const data symbol itself). Built for ABI 1.1: it needs the vcpu/1
 * and pager/1 host extensions, so a 1.0 host refuses it by version. Written out rather
 * than with VMM_SWIFT_PLUGIN_ENTRY because it also has get_extension
 * (vmm_async_pf_plugin.h). */
#include "vmm_plugin.h"

void *async_pf_init(const vmm_host_t *host, const char *config, const char **error_out);
void async_pf_destroy(void *instance);
const void *async_pf_get_extension(void *instance, const char *id);

const vmm_plugin_entry_t vmm_plugin_entry = {
    sizeof(vmm_plugin_entry_t), VMM_PLUGIN_ABI_MAJOR, VMM_PLUGIN_ABI_MINOR,
    "org.vmmkit.async-pf", "1.0.0",
    "User-space async page faults (Linux's KVM paravirtual protocol) over the demand pager",
    async_pf_init, async_pf_destroy, async_pf_get_extension};
