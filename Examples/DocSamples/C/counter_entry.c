// doc-sample: Sources/VMMPluginKit/VMMPluginKit.docc/WritingASwiftPlugin.md #3
#include "vmm_plugin_swift.h"   /* from VMMPluginKit's C side (CShims/CVMMPlugin) */

VMM_SWIFT_PLUGIN_ENTRY("com.example.counter", "1.0.0", "counts writes",
                       counter_init, counter_destroy)
// doc-sample: end
