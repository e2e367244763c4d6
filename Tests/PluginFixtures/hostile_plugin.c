/*
 * Plugins whose code must never run in a listing process (`vmm plugins`): built by
 * scripts/build-plugins into .build/plugins/fixtures/hostile/ with -DVARIANT_...
 * Their descriptors are valid; their code is not.
 *   INIT_CRASHES  init dereferences NULL (SIGSEGV)
 *   CTOR_EXITS    a library constructor ends the process with status 77
 *   INIT_HANGS    init never returns
 *   INIT_HIDES    init closes its output (the probe's pipe: the parent reads an end of
 *                 file) and never returns
 */
#include "vmm_plugin.h"

#include <stddef.h>
#include <unistd.h>

#if defined(VARIANT_CTOR_EXITS)
__attribute__((constructor)) static void end_the_process(void) { _exit(77); }
#endif

static void *hostile_init(const vmm_host_t *host, const char *config, const char **error_out)
{
    (void)host; (void)config; (void)error_out;
#if defined(VARIANT_INIT_CRASHES)
    volatile int *nowhere = NULL;
    return (void *)(size_t)*nowhere;
#elif defined(VARIANT_INIT_HANGS) || defined(VARIANT_INIT_HIDES)
#if defined(VARIANT_INIT_HIDES)
    close(1);
    close(2);
#endif
    for (;;)
        pause();
    return NULL;
#else
    return (void *)host;
#endif
}

static void hostile_destroy(void *instance) { (void)instance; }

const vmm_plugin_entry_t vmm_plugin_entry = {
    sizeof(vmm_plugin_entry_t), VMM_PLUGIN_ABI_MAJOR, VMM_PLUGIN_ABI_MINOR,
    "org.vmmkit.test.hostile", "6.6.6", "runs hostile code when loaded",
    hostile_init, hostile_destroy, NULL,
};
