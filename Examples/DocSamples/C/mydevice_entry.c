// doc-sample: Plugins/README.md #7
#include "vmm_plugin_swift.h"
VMM_SWIFT_PLUGIN_ENTRY("org.example.mydevice", "1.0.0", "port 0x70 reads as 42",
                       mydevice_init, mydevice_destroy)
// doc-sample: end
