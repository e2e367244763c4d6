/* Plugins/MemoryFault/memory_fault.c as it ships, its entry renamed so that four plugins link into one binary. */
#define vmm_plugin_entry fuzz_memory_fault_entry
#include "../VMMKit/Plugins/MemoryFault/memory_fault.c"
