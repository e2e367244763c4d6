/* The exported descriptor of the UART Swift plugin (vmm_plugin_swift.h: Swift cannot
 * define this const data symbol itself). The two functions are the @c functions in
 * ../Sources/Entry.swift; get_extension answers
 * the ABI 1.2 state extension. */
#include "vmm_plugin_swift.h"

VMM_SWIFT_PLUGIN_ENTRY_EXT("org.vmmkit.uart16550", "1.0.0",
                           "16550A UART console on a port or MMIO base (register shift 0/1/2)",
                           uart16550_plugin_init, uart16550_plugin_destroy,
                           uart16550_plugin_get_extension)
