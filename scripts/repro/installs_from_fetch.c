/* A memory-fault plugin that, asked for a page, first calls pager/1 install_page: for
 * the page being fetched ("same"), or for the next one as a read-ahead ("next"). Each
 * call fetched through this handler again on the same thread: the first waited for its
 * own fetch (the handler budget ended the run, blaming the plugin), the second nested
 * one level a page until the fault router's stack overflowed (SIGSEGV at 1,000 pages).
 * install_page now answers -EDEADLK from inside a fetch (PluginHostileCallTests).
 * Config: "same" or "next". */
#include "vmm_plugin.h"
#include <stdio.h>
#include <string.h>

static const vmm_host_t *host;
static const vmm_host_pager_t *pager;
static int next;
static unsigned char page[4096];

static vmm_verdict_t on_fault(void *user, vmm_exit_t *exit) {
    (void)user;
    if (!exit->memory_fault.annotated) return VMM_NOT_MINE;
    uint64_t gpa = exit->memory_fault.gpa & ~0xfffull;
    char line[96];
    snprintf(line, sizeof line, "install_page from the fetch: %d",
             pager->install_page(host->host_data, next ? gpa + 4096 : gpa));
    host->log(host->host_data, VMM_LOG_WARN, line);
    memset(page, 0x21, sizeof page);
    return host->write_guest(host->host_data, gpa, page, sizeof page) == 0 ? VMM_HANDLED : VMM_FAIL;
}

static void *init(const vmm_host_t *h, const char *config, const char **error) {
    host = h;
    next = config && strcmp(config, "next") == 0;
    pager = h->get_extension(h->host_data, VMM_EXT_HOST_PAGER);
    if (!pager) { *error = "no pager/1"; return NULL; }
    vmm_handler_desc_t d = {0};
    d.struct_size = sizeof d;
    d.exit_class = VMM_EXIT_MEMORY_FAULT;
    d.base = 0x1000000;
    d.length = 16 * 4096;
    d.handle = on_fault;
    return h->register_handler(h->host_data, &d, error) == 0 ? (void *)1 : NULL;
}

static void destroy(void *instance) { (void)instance; }

const vmm_plugin_entry_t vmm_plugin_entry = {sizeof(vmm_plugin_entry_t), VMM_PLUGIN_ABI_MAJOR, VMM_PLUGIN_ABI_MINOR,
    "org.vmmkit.repro.installs-from-fetch", "1.0", "calls install_page from its page fetch", init, destroy, NULL};
