/*
 * vmm_async_pf_plugin.h - the extension the AsyncPF plugin (Plugins/AsyncPF) offers
 * the VMM and other plugins, through the plugin entry's get_extension (vmm_plugin.h).
 *
 * A VMM that wants to give a guest a real #PF or an NMI while async page faults are
 * on must not inject it behind the plugin's back: if the guest has not yet read an
 * async "not present" (CR2 = token, flags = 1), the injection would clobber CR2 and the
 * reason (the race Andy Lutomirski found). These calls hand the event to the plugin,
 * which injects it at once when that is safe, and otherwise holds it back until the
 * guest has cleared `flags` (the host-side tracking Thomas Gleixner proposed); if the
 * guest keeps `flags` set for conflict_bound exits, the vCPU stops with an
 * "async-pf conflict" diagnosis.
 */
#ifndef VMM_ASYNC_PF_PLUGIN_H
#define VMM_ASYNC_PF_PLUGIN_H

#include <stdint.h>

#define VMM_ASYNC_PF_PLUGIN_EVENTS "org.vmmkit.async-pf.events/1" /* vmm_async_pf_events_t */

typedef struct vmm_async_pf_events {
    uint32_t struct_size; /* sizeof(vmm_async_pf_events_t) as the plugin was compiled */
    uint32_t reserved;    /* zero */
    void *instance;       /* pass as the first argument of the calls below */
    /* [any-thread] Gives vCPU vcpu_id an NMI: the plugin kicks the vCPU and, on its
     * thread, injects it now or once the guest cleared `flags`. 0; -EINVAL no vCPU. */
    int (*request_nmi)(void *instance, uint32_t vcpu_id);
    /* [any-thread] Gives vCPU vcpu_id a real #PF at `address` (CR2) with error_code,
     * under the same rule; a second one while one is held back makes the vCPU fail.
     * 0; -EINVAL no vCPU. */
    int (*request_page_fault)(void *instance, uint32_t vcpu_id, uint64_t address,
                              uint32_t error_code);
} vmm_async_pf_events_t;

#endif /* VMM_ASYNC_PF_PLUGIN_H */
