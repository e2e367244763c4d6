/* Plugins/DebugExit/debug_exit.c as it ships, its entry renamed so that four plugins link into one binary. */
#define vmm_plugin_entry fuzz_debug_exit_entry
#include "../VMMKit/Plugins/DebugExit/debug_exit.c"
