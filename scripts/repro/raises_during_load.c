/* A plugin whose init registers many async-PF handlers and starts a thread that raises
 * PAGE_READY events without pause (allowed from any thread). The host wired the handlers
 * into an unlocked array on the loading thread while the raises read it: the process
 * aborted in 2 of 8 runs (PluginHostileCallTests). The lists are under a lock now. */
#include "vmm_plugin.h"
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static const vmm_host_t *host;
static const vmm_host_async_pf_t *async_pf;
static atomic_int stopping;
static atomic_long raised;
static pthread_t raiser;

static vmm_verdict_t on_event(void *user, vmm_exit_t *exit) { (void)user; (void)exit; return VMM_NOT_MINE; }

static void *raise_forever(void *arg) {
    (void)arg;
    vmm_exit_async_pf_t event = {0};
    event.kind = VMM_ASYNC_PF_PAGE_READY;
    event.gpa = 0x1000;
    event.size = 4096;
    const char *message;
    while (!atomic_load(&stopping)) {
        async_pf->raise(host->host_data, VMM_VCPU_NONE, &event, &message);
        atomic_fetch_add(&raised, 1);
    }
    return NULL;
}

static void *init(const vmm_host_t *h, const char *config, const char **error) {
    host = h;
    async_pf = h->get_extension(h->host_data, VMM_EXT_HOST_ASYNC_PF);
    if (!async_pf) { *error = "no async_pf extension"; return NULL; }
    int handlers = atoi(config && *config ? config : "2000");
    vmm_handler_desc_t d = {0};
    d.struct_size = sizeof d;
    d.exit_class = VMM_EXIT_ASYNC_PF;
    d.handle = on_event;
    for (int i = 0; i < handlers; i++) {
        d.priority = i;
        if (h->register_handler(h->host_data, &d, error) != 0) return NULL;
    }
    pthread_create(&raiser, NULL, raise_forever, NULL);
    return (void *)1;
}

static void destroy(void *instance) {
    (void)instance;
    atomic_store(&stopping, 1);
    pthread_join(raiser, NULL);
    host->log(host->host_data, VMM_LOG_WARN, atomic_load(&raised) > 0 ? "raised events" : "raised none");
}

const vmm_plugin_entry_t vmm_plugin_entry = {sizeof(vmm_plugin_entry_t), VMM_PLUGIN_ABI_MAJOR, VMM_PLUGIN_ABI_MINOR,
    "org.vmmkit.repro.raises-during-load", "1.0", "raises async-PF events while handlers are wired", init, destroy, NULL};
