// doc-sample: Plugins/README.md #1
/* answer.c: port 0x70 reads as 42 */
#include "vmm_plugin.h"
#include <string.h>

static vmm_verdict_t handle(void *user, vmm_exit_t *ex)
{
    (void)user;
    if (!ex->pio.is_write) {          /* an IN: fill what the guest reads */
        memset(ex->pio.data, 0, (size_t)ex->pio.size * ex->pio.count);
        ex->pio.data[0] = 42;
    }
    return VMM_HANDLED;
}

static int token; /* no state: any non-NULL instance pointer will do */

static void *answer_init(const vmm_host_t *host, const char *config, const char **error_out)
{
    vmm_handler_desc_t d;
    (void)config;
    memset(&d, 0, sizeof d);          /* rule: the producer zero-fills */
    d.struct_size = sizeof d;
    d.exit_class = VMM_EXIT_PIO;
    d.base = 0x70;
    d.length = 1;
    d.flags = VMM_HANDLER_EXCLUSIVE;  /* nobody else may claim port 0x70 */
    d.handle = handle;
    d.name = "answer";
    if (host->register_handler(host->host_data, &d, error_out) != 0)
        return NULL;                  /* the host's message names both owners */
    return &token;
}

static void answer_destroy(void *instance) { (void)instance; }

const vmm_plugin_entry_t vmm_plugin_entry = {
    sizeof(vmm_plugin_entry_t), VMM_PLUGIN_ABI_MAJOR, VMM_PLUGIN_ABI_MINOR,
    "org.example.answer", "1.0.0", "port 0x70 reads as 42",
    answer_init, answer_destroy, NULL,
};
// doc-sample: end
