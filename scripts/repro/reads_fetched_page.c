/* A memory-fault plugin that reads the page it is asked for before it writes it (a
 * plugin checking what is there first). The page is missing until the fetch ends, so a
 * read of it on the async-PF fetcher thread waited on that very fetch: the run hung,
 * and its exit with it (PluginHostileCallTests). read_guest now answers -EAGAIN there. */
#include "vmm_plugin.h"
#include <stdio.h>

static const vmm_host_t *host;
static char zeros[4096];

static vmm_verdict_t on_fault(void *user, vmm_exit_t *exit) {
    (void)user;
    if (!exit->memory_fault.annotated) return VMM_NOT_MINE;
    uint64_t page = exit->memory_fault.gpa & ~0xfffull;
    uint8_t byte;
    char line[96];
    snprintf(line, sizeof line, "read of the page being fetched: %d", host->read_guest(host->host_data, page, &byte, 1));
    host->log(host->host_data, VMM_LOG_WARN, line);
    host->write_guest(host->host_data, page, zeros, sizeof zeros);
    return VMM_HANDLED;
}

static void *init(const vmm_host_t *h, const char *config, const char **error) {
    (void)config;
    host = h;
    vmm_handler_desc_t d = {0};
    d.struct_size = sizeof d;
    d.exit_class = VMM_EXIT_MEMORY_FAULT; /* base 0, length 0: the whole address space */
    d.handle = on_fault;
    return h->register_handler(h->host_data, &d, error) == 0 ? (void *)1 : NULL;
}

static void destroy(void *instance) { (void)instance; }

const vmm_plugin_entry_t vmm_plugin_entry = {sizeof(vmm_plugin_entry_t), VMM_PLUGIN_ABI_MAJOR, VMM_PLUGIN_ABI_MINOR,
    "org.vmmkit.repro.reads-fetched-page", "1.0", "reads the page it is asked to fill", init, destroy, NULL};
