/*
 * request_stop as a plugin makes it: from a handler or from init, for the whole VM, a
 * vCPU, or an id that names none. Config, comma-separated, `reason=` last (it takes the
 * rest of the string): when=exit (default: on a guest write to port 0xf4, the port the
 * test guests end on, which it then owns) or when=init (no handler: it loads beside
 * DebugExit); vcpu=N (default -1); code=N (default 3); fail (init fails after its
 * request); reason=TEXT (default: no reason, NULL).
 */
#include "vmm_plugin.h"

#include <stdlib.h>
#include <string.h>

typedef struct stopper {
    const vmm_host_t *host;
    int32_t vcpu, code;
    char reason[256];
    int has_reason;
} stopper_t;

static void stop(stopper_t *s)
{
    s->host->request_stop(s->host->host_data, s->vcpu, s->code, s->has_reason ? s->reason : NULL);
}

static vmm_verdict_t on_write(void *user, vmm_exit_t *ex)
{
    if (ex->pio.is_write)
        stop((stopper_t *)user);
    else
        memset(ex->pio.data, 0, (size_t)ex->pio.size * ex->pio.count);
    return VMM_HANDLED;
}

/* Whether the comma-separated item at p is `key` (alone or as key=...). */
static int is_key(const char *p, const char *key)
{
    size_t n = strlen(key);
    return strncmp(p, key, n) == 0 && (p[n] == '=' || p[n] == ',' || p[n] == '\0');
}

static void *stopper_init(const vmm_host_t *host, const char *config, const char **error_out)
{
    stopper_t *s = calloc(1, sizeof *s);
    int at_init = 0, fail = 0;
    if (s == NULL) { *error_out = "stopper: out of memory"; return NULL; }
    s->host = host;
    s->vcpu = -1;
    s->code = 3;
    for (const char *p = config; *p != '\0'; p = strchr(p, ',') ? strchr(p, ',') + 1 : p + strlen(p)) {
        if (is_key(p, "reason")) {
            strncpy(s->reason, p + 7, sizeof s->reason - 1);
            s->has_reason = 1;
            break;
        }
        if (is_key(p, "when")) at_init = strncmp(p + 5, "init", 4) == 0;
        if (is_key(p, "vcpu")) s->vcpu = (int32_t)strtol(p + 5, NULL, 0);
        if (is_key(p, "code")) s->code = (int32_t)strtol(p + 5, NULL, 0);
        if (is_key(p, "fail")) fail = 1;
    }
    if (at_init) stop(s);
    if (fail) {
        free(s);
        *error_out = "stopper: failing after its request_stop, as configured";
        return NULL;
    }
    if (at_init) return s;
    vmm_handler_desc_t d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.exit_class = VMM_EXIT_PIO;
    d.base = 0xf4;
    d.length = 1;
    d.flags = VMM_HANDLER_EXCLUSIVE;
    d.handle = on_write;
    d.user = s;
    d.name = "stopper";
    if (host->register_handler(host->host_data, &d, error_out) != 0) {
        free(s);
        return NULL;
    }
    return s;
}

static void stopper_destroy(void *instance) { free(instance); }

const vmm_plugin_entry_t vmm_plugin_entry = {
    sizeof(vmm_plugin_entry_t), VMM_PLUGIN_ABI_MAJOR, VMM_PLUGIN_ABI_MINOR,
    "org.vmmkit.test.stopper", "1.0.0", "request_stop from an exit or from init (tests)",
    stopper_init, stopper_destroy, NULL,
};
