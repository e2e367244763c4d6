/* The exported descriptor of the AsyncPF Swift plugin (see vmm_plugin_swift.h: Swift
 * cannot define this const data symbol itself). Built for ABI 1.1: it needs the vcpu/1
 * and pager/1 host extensions, so a 1.0 host refuses it by version. */
#include "vmm_plugin_swift.h"

VMM_SWIFT_PLUGIN_ENTRY("org.vmmkit.async-pf", "1.0.0",
                       "User-space async page faults (Linux's KVM paravirtual protocol) over the demand pager",
                       async_pf_init, async_pf_destroy)
