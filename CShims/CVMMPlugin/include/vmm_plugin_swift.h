/*
 * vmm_plugin_swift.h - the one line of C a Swift plugin needs.
 *
 * The host finds a plugin through a const *data* symbol, vmm_plugin_entry, that it
 * reads with dlsym() before running any plugin code. Swift cannot define a C data
 * symbol with a fixed name and a static initializer holding function pointers
 * (Swift 6.3's @section/@used constant globals reject function pointers, and would
 * mangle the name), so each Swift plugin has a tiny C file:
 *
 *     #include "vmm_plugin_swift.h"
 *     VMM_SWIFT_PLUGIN_ENTRY("org.example.mydevice", "1.0.0", "My device",
 *                            mydevice_init, mydevice_destroy)
 *
 * where mydevice_init / mydevice_destroy are Swift functions exported with @c
 * (or @_cdecl on compilers before 6.3) that forward to VMMPluginKit's
 * PluginEntry.create / PluginEntry.destroy. See Plugins/README.md.
 */
#ifndef VMM_PLUGIN_SWIFT_H
#define VMM_PLUGIN_SWIFT_H

#include "vmm_plugin.h"

#define VMM_SWIFT_PLUGIN_ENTRY(id, version, description, init_fn, destroy_fn)        \
    void *init_fn(const vmm_host_t *host, const char *config, const char **error_out); \
    void destroy_fn(void *instance);                                                   \
    const vmm_plugin_entry_t vmm_plugin_entry = {                                      \
        sizeof(vmm_plugin_entry_t), VMM_PLUGIN_ABI_MAJOR, VMM_PLUGIN_ABI_MINOR,        \
        id, version, description, init_fn, destroy_fn, NULL};

/* The same with a get_extension function (a Swift @c function forwarding to
 * PluginEntry.pluginExtension), for plugins that offer extensions such as the ABI 1.2
 * state table (PluginStateful). */
#define VMM_SWIFT_PLUGIN_ENTRY_EXT(id, version, description, init_fn, destroy_fn, ext_fn) \
    void *init_fn(const vmm_host_t *host, const char *config, const char **error_out); \
    void destroy_fn(void *instance);                                                   \
    const void *ext_fn(void *instance, const char *ext_id);                            \
    const vmm_plugin_entry_t vmm_plugin_entry = {                                      \
        sizeof(vmm_plugin_entry_t), VMM_PLUGIN_ABI_MAJOR, VMM_PLUGIN_ABI_MINOR,        \
        id, version, description, init_fn, destroy_fn, ext_fn};

#endif /* VMM_PLUGIN_SWIFT_H */
