/*
 * Plugins whose code must never run in a listing process (`vmm plugins`): built by
 * scripts/build-plugins into .build/plugins/fixtures/hostile/ with -DVARIANT_...
 * Their descriptors are valid; their code is not.
 *   INIT_CRASHES  init dereferences NULL (SIGSEGV)
 *   CTOR_EXITS    a library constructor ends the process with status 77
 *   INIT_HANGS    init never returns
 *   INIT_HIDES    init closes its output (the probe's pipe: the parent reads an end of
 *                 file) and never returns
 *   INIT_FORKS    init starts a process of its own in a new session, which keeps the
 *                 probe's output open and lives on (its pid written to the file named by
 *                 VMM_TEST_GRANDCHILD_PIDFILE), then returns normally
 * and, built into .build/plugins/fixtures/ (it may be loaded):
 *   STATE_HANGS   offers the state extension (an empty blob, version 1); config "save"
 *                 makes its save never return, "restore" its restore, "destroy" its
 *                 destroy; "save-min" and "restore-min" make them fail with INT32_MIN
 *                 (not a negative errno: the host once negated it); "misaligned" offers
 *                 its table one byte past an 8-byte boundary
 */
#define _DEFAULT_SOURCE /* fork, setsid */
#include "vmm_plugin.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(VARIANT_STATE_HANGS)
static int hang_in; /* 1: save, 2: restore, 3: destroy; 4, 5: save, restore fail; 6: misaligned table (from the config) */
#endif

#if defined(VARIANT_CTOR_EXITS)
__attribute__((constructor)) static void end_the_process(void) { _exit(77); }
#endif

static void *hostile_init(const vmm_host_t *host, const char *config, const char **error_out)
{
    (void)host; (void)config; (void)error_out;
#if defined(VARIANT_INIT_CRASHES)
    volatile int *nowhere = NULL;
    return (void *)(size_t)*nowhere;
#elif defined(VARIANT_INIT_FORKS)
    (void)host;
    (void)config;
    (void)error_out;
    pid_t child = fork();
    if (child == 0) {
        setsid();
        for (;;)
            pause();
    }
    const char *pidfile = getenv("VMM_TEST_GRANDCHILD_PIDFILE");
    if (child > 0 && pidfile) {
        FILE *f = fopen(pidfile, "w");
        if (f) { fprintf(f, "%d\n", (int)child); fclose(f); }
    }
    return (void *)host;
#elif defined(VARIANT_INIT_HANGS) || defined(VARIANT_INIT_HIDES)
#if defined(VARIANT_INIT_HIDES)
    close(1);
    close(2);
#endif
    for (;;)
        pause();
    return NULL;
#elif defined(VARIANT_STATE_HANGS)
    static const char *const modes[] = { "save", "restore", "destroy", "save-min", "restore-min", "misaligned" };
    for (int i = 0; i < 6; i++)
        if (strcmp(config, modes[i]) == 0)
            hang_in = i + 1;
    return (void *)host;
#else
    return (void *)host;
#endif
}

static void hostile_destroy(void *instance)
{
    (void)instance;
#if defined(VARIANT_STATE_HANGS)
    while (hang_in == 3)
        pause();
#endif
}

#if defined(VARIANT_STATE_HANGS)
static int state_save(void *user, void *buffer, uint64_t capacity, uint64_t *size_out)
{
    (void)user; (void)buffer; (void)capacity;
    while (hang_in == 1)
        pause();
    *size_out = 0;
    return hang_in == 4 ? INT32_MIN : 0;
}

static int state_restore(void *user, const void *bytes, uint64_t length, uint32_t version)
{
    (void)user; (void)bytes; (void)length; (void)version;
    while (hang_in == 2)
        pause();
    return hang_in == 5 ? INT32_MIN : 0;
}

static vmm_plugin_state_t state = { sizeof(vmm_plugin_state_t), 1, NULL, state_save, state_restore };

static unsigned char odd_state[sizeof state + 8] __attribute__((aligned(8)));

static const void *hostile_get_extension(void *instance, const char *id)
{
    (void)instance;
    if (strcmp(id, VMM_PLUGIN_EXT_STATE) != 0)
        return NULL;
    if (hang_in != 6)
        return &state;
    memcpy(odd_state + 1, &state, sizeof state);
    return odd_state + 1;
}
#define GET_EXTENSION hostile_get_extension
#else
#define GET_EXTENSION NULL
#endif

const vmm_plugin_entry_t vmm_plugin_entry = {
    sizeof(vmm_plugin_entry_t), VMM_PLUGIN_ABI_MAJOR, VMM_PLUGIN_ABI_MINOR,
    "org.vmmkit.test.hostile", "6.6.6", "runs hostile code when loaded",
    hostile_init, hostile_destroy, GET_EXTENSION,
};
