/* The exported descriptor of the NullSwift benchmark plugin (Swift cannot define it). */
#include "vmm_plugin_swift.h"

VMM_SWIFT_PLUGIN_ENTRY("org.vmmkit.bench.null-swift", "1.0.0",
                       "a port that reads 0 and counts writes, in Swift (benchmarks)",
                       null_swift_init, null_swift_destroy)
