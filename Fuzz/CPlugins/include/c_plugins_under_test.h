/* The C plugins bundled with VMMKit, compiled into the fuzz-c-plugins target from their
 * own sources (each file here includes one, its vmm_plugin_entry renamed). */
#ifndef C_PLUGINS_UNDER_TEST_H
#define C_PLUGINS_UNDER_TEST_H

#include "vmm_plugin.h"

/* The entry of plugin `index` (0 DebugExit, 1 MemoryFault, 2 PCIHost, 3 PCTestDev),
 * NULL past the last. */
const vmm_plugin_entry_t *c_plugin_under_test(unsigned index);

#endif
