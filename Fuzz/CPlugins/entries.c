#include "c_plugins_under_test.h"

#include <stddef.h>

extern const vmm_plugin_entry_t fuzz_debug_exit_entry, fuzz_memory_fault_entry,
    fuzz_pci_host_entry, fuzz_pc_testdev_entry;

const vmm_plugin_entry_t *c_plugin_under_test(unsigned index)
{
    static const vmm_plugin_entry_t *const entries[] = {
        &fuzz_debug_exit_entry, &fuzz_memory_fault_entry, &fuzz_pci_host_entry, &fuzz_pc_testdev_entry,
    };
    return index < sizeof entries / sizeof entries[0] ? entries[index] : NULL;
}
