#include "cplugin_bench.h"

#include <string.h>

/* Same body as Tests/PluginFixtures/null_plugin.c's handler. */
static vmm_verdict_t null_handle(void *user, vmm_exit_t *ex)
{
    uint64_t *writes = (uint64_t *)user;
    if (ex->pio.is_write)
        (*writes)++;
    else
        memset(ex->pio.data, 0, (size_t)ex->pio.size * ex->pio.count);
    return VMM_HANDLED;
}

/* volatile: a real indirect call per exit, like the host's. */
static vmm_verdict_t (*volatile handler)(void *, vmm_exit_t *) = null_handle;

uint64_t cplugin_bench_direct(uint64_t n, vmm_exit_t *record, uint8_t *data)
{
    uint64_t handled = 0, writes = 0;
    for (uint64_t i = 0; i < n; i++) {
        record->struct_size = sizeof *record;
        record->vcpu_id = 0;
        record->exit_class = VMM_EXIT_PIO;
        record->message = NULL;
        record->pio.port = 0x10;
        record->pio.size = 1;
        record->pio.is_write = 0;
        record->pio.count = 1;
        record->pio.data = data;
        handled += handler(&writes, record) == VMM_HANDLED;
    }
    return handled;
}
