/* A memory-fault plugin (pages of 0x21 over 16 MiB + 16 pages) whose destroy() reads a
 * page of its range the guest never touched. The run was over and the demand pager's
 * router stopped: nothing served the fault, and the read waited for ever (the handler
 * budget ended the VMM, blaming the plugin). read_guest now answers -EAGAIN for a page
 * the stopped pager never delivered (PluginHostileCallTests). */
#include "vmm_plugin.h"
#include <stdio.h>
#include <string.h>

static const vmm_host_t *host;

static vmm_verdict_t on_fault(void *user, vmm_exit_t *exit) {
    (void)user;
    if (!exit->memory_fault.annotated) return VMM_NOT_MINE;
    static unsigned char page[4096];
    memset(page, 0x21, sizeof page);
    return host->write_guest(host->host_data, exit->memory_fault.gpa & ~0xfffull, page, sizeof page) == 0 ? VMM_HANDLED : VMM_FAIL;
}

static void *init(const vmm_host_t *h, const char *config, const char **error) {
    (void)config;
    host = h;
    vmm_handler_desc_t d = {0};
    d.struct_size = sizeof d;
    d.exit_class = VMM_EXIT_MEMORY_FAULT;
    d.base = 0x1000000;
    d.length = 16 * 4096;
    d.handle = on_fault;
    return h->register_handler(h->host_data, &d, error) == 0 ? (void *)1 : NULL;
}

static void destroy(void *instance) {
    (void)instance;
    unsigned char touched = 0, never = 0;
    char line[120];
    int a = host->read_guest(host->host_data, 0x1000000, &touched, 1);
    int b = host->read_guest(host->host_data, 0x1000000 + 15 * 4096, &never, 1);
    snprintf(line, sizeof line, "after the run: the page touched %d (0x%x), one never touched %d", a, touched, b);
    host->log(host->host_data, VMM_LOG_WARN, line);
}

const vmm_plugin_entry_t vmm_plugin_entry = {sizeof(vmm_plugin_entry_t), VMM_PLUGIN_ABI_MAJOR, VMM_PLUGIN_ABI_MINOR,
    "org.vmmkit.repro.reads-after-run", "1.0", "reads guest memory in destroy", init, destroy, NULL};
