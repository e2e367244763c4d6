/* An async-PF handler that raises the event it was given again, from inside the call,
 * without end: each level is a frame on the raiser's stack, which overflowed (a crash).
 * A thread started in init raises one PAGE_READY once the handler is wired (until then
 * nothing handles it) and logs what it got back (PluginHostileCallTests). */
#include "vmm_plugin.h"
#include <pthread.h>
#include <stdio.h>

static const vmm_host_t *host;
static const vmm_host_async_pf_t *async_pf;
static pthread_t raiser;
static char outcome[2000] = "no answer";

static vmm_verdict_t on_event(void *user, vmm_exit_t *exit) {
    (void)user;
    const char *message = NULL;
    vmm_verdict_t v = async_pf->raise(host->host_data, exit->vcpu_id, &exit->async_pf, &message);
    if (v == VMM_FAIL) exit->message = message;
    return v;
}

static void *raise_once(void *arg) {
    (void)arg;
    vmm_exit_async_pf_t event = {0};
    event.kind = VMM_ASYNC_PF_PAGE_READY;
    event.gpa = 0x1000;
    event.size = 4096;
    const char *message = NULL;
    vmm_verdict_t v = VMM_NOT_MINE;
    for (long tries = 0; v == VMM_NOT_MINE && tries < 100000000; tries++)
        v = async_pf->raise(host->host_data, VMM_VCPU_NONE, &event, &message);
    snprintf(outcome, sizeof outcome, "raise answered %d: %s", (int)v, message ? message : "(no message)");
    return NULL;
}

static void *init(const vmm_host_t *h, const char *config, const char **error) {
    (void)config;
    host = h;
    async_pf = h->get_extension(h->host_data, VMM_EXT_HOST_ASYNC_PF);
    if (!async_pf) { *error = "no async_pf extension"; return NULL; }
    vmm_handler_desc_t d = {0};
    d.struct_size = sizeof d;
    d.exit_class = VMM_EXIT_ASYNC_PF;
    d.handle = on_event;
    if (h->register_handler(h->host_data, &d, error) != 0) return NULL;
    pthread_create(&raiser, NULL, raise_once, NULL);
    return (void *)1;
}

static void destroy(void *instance) {
    (void)instance;
    pthread_join(raiser, NULL);
    host->log(host->host_data, VMM_LOG_WARN, outcome);
}

const vmm_plugin_entry_t vmm_plugin_entry = {sizeof(vmm_plugin_entry_t), VMM_PLUGIN_ABI_MAJOR, VMM_PLUGIN_ABI_MINOR,
    "org.vmmkit.repro.raises-from-handler", "1.0", "raises from inside its async-PF handler", init, destroy, NULL};
