/*
 * Test fixture for the host's register cache across exits: every exit it handles
 * reads the vCPU's RAX (get_reg) and stores it in the next 8-byte slot from
 * guest-physical 0x20200 (write_guest), so a value cached from an earlier exit shows.
 * An OUT to port 0x560 and a HLT are HANDLED; a HLT with RAX 0 is declined
 * (VMM_NOT_MINE), so the host's default halts the VM. Its PIO and HLT handlers are
 * the VM's only ones, so both take the run loop's hot path.
 */
#include "vmm_plugin.h"

#include <stdlib.h>
#include <string.h>

typedef struct regcache { const vmm_host_t *host; uint64_t slots; } regcache_t;

static vmm_verdict_t record_rax(regcache_t *rc, vmm_exit_t *ex)
{
    uint64_t rax = 0;
    if (rc->slots >= 16) { ex->message = "regcache: more than 16 exits"; return VMM_FAIL; }
    if (rc->host->get_reg(rc->host->host_data, ex->vcpu_id, VMM_REG_RAX, &rax) != 0) {
        ex->message = "regcache: get_reg failed";
        return VMM_FAIL;
    }
    if (rc->host->write_guest(rc->host->host_data, 0x20200 + 8 * rc->slots, &rax, sizeof rax) != 0) {
        ex->message = "regcache: write_guest failed";
        return VMM_FAIL;
    }
    rc->slots++;
    return rax == 0 && ex->exit_class == VMM_EXIT_HLT ? VMM_NOT_MINE : VMM_HANDLED;
}

static vmm_verdict_t on_exit(void *user, vmm_exit_t *ex) { return record_rax(user, ex); }

static int add(const vmm_host_t *host, regcache_t *rc, uint32_t cls, uint64_t base, uint64_t length,
               const char **error_out)
{
    vmm_handler_desc_t d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.exit_class = cls;
    d.base = base;
    d.length = length;
    d.handle = on_exit;
    d.user = rc;
    d.name = "regcache";
    return host->register_handler(host->host_data, &d, error_out);
}

static void *regcache_init(const vmm_host_t *host, const char *config, const char **error_out)
{
    regcache_t *rc = calloc(1, sizeof *rc);
    (void)config;
    if (rc == NULL) { *error_out = "regcache: out of memory"; return NULL; }
    rc->host = host;
    if (add(host, rc, VMM_EXIT_PIO, 0x560, 1, error_out) != 0 || add(host, rc, VMM_EXIT_HLT, 0, 0, error_out) != 0) {
        free(rc);
        return NULL;
    }
    return rc;
}

static void regcache_destroy(void *instance) { free(instance); }

const vmm_plugin_entry_t vmm_plugin_entry = {
    sizeof(vmm_plugin_entry_t), VMM_PLUGIN_ABI_MAJOR, VMM_PLUGIN_ABI_MINOR,
    "org.vmmkit.test.regcache", "1.0.0", "records RAX at every exit (register cache test)",
    regcache_init, regcache_destroy, NULL,
};
