/* Plugins/PCTestDev/pc_testdev.c as it ships, its entry renamed so that four plugins link into one binary. */
#define vmm_plugin_entry fuzz_pc_testdev_entry
#include "../VMMKit/Plugins/PCTestDev/pc_testdev.c"
