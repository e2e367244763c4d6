/* Raises async-PF PAGE_MISSING for vCPU 0 from a thread that is not vCPU 0's (its init,
 * on the loading thread). The header says PAGE_MISSING comes from the vCPU's own thread
 * during its exit; the host took it from anywhere, and the AsyncPF plugin's handler then
 * changed that vCPU's state beside the vCPU itself (an NMI lost, its halt state wrong).
 * The host now refuses it with a message (PluginHostileCallTests). */
#include "vmm_plugin.h"
#include <stdio.h>
#include <string.h>

static void *init(const vmm_host_t *h, const char *config, const char **error) {
    (void)config; (void)error;
    const vmm_host_async_pf_t *apf = h->get_extension(h->host_data, VMM_EXT_HOST_ASYNC_PF);
    if (!apf) { *error = "no async_pf/1"; return NULL; }
    vmm_exit_async_pf_t event;
    memset(&event, 0, sizeof event);
    event.kind = VMM_ASYNC_PF_PAGE_MISSING;
    event.gpa = 0x200000;
    event.size = 4096;
    const char *message = NULL;
    vmm_verdict_t v = apf->raise(h->host_data, 0, &event, &message);
    char line[200];
    snprintf(line, sizeof line, "raise answered %d: %s", (int)v, message ? message : "(no message)");
    h->log(h->host_data, VMM_LOG_WARN, line);
    return (void *)1;
}

static void destroy(void *instance) { (void)instance; }

const vmm_plugin_entry_t vmm_plugin_entry = {sizeof(vmm_plugin_entry_t), VMM_PLUGIN_ABI_MAJOR, VMM_PLUGIN_ABI_MINOR,
    "org.vmmkit.repro.raises-missing-off-thread", "1.0", "raises PAGE_MISSING from its init", init, destroy, NULL};
