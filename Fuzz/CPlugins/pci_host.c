/* Plugins/PCIHost/pci_host.c as it ships, its entry renamed so that four plugins link into one binary. */
#define vmm_plugin_entry fuzz_pci_host_entry
#include "../VMMKit/Plugins/PCIHost/pci_host.c"
