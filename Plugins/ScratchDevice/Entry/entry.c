/* The exported descriptor of the ScratchDevice Swift plugin (see vmm_plugin_swift.h:
 * Swift cannot define this const data symbol itself). The three functions are the @c
 * functions in ../Sources/Entry.swift; the third answers the state extension. */
#include "vmm_plugin_swift.h"

VMM_SWIFT_PLUGIN_ENTRY_EXT("org.vmmkit.scratch-device", "1.0.0",
                           "Scratch register file on ports and MMIO, for tests and examples",
                           scratch_device_init, scratch_device_destroy, scratch_device_get_extension)
