/*
 * Test fixture for hostile guest addresses (issue 12): a guest OUT to port 0x5b0 hands
 * the plugin a guest-physical address in RBX and a length in RCX, and the plugin
 * passes them, unchecked, to every host service that takes a guest address:
 *   RAX <- read_guest(gpa, buf, len)
 *   RDX <- write_guest(gpa, buf, len)          (buf: what read_guest left, or zeroes)
 *   RSI <- pager/1 install_page(gpa), or 1 when the host offers no pager
 *   RDI <- async_pf/1 raise of PAGE_MISSING for gpa (the verdict), or 1 without it
 * The host must answer each with an error code and carry on; nothing may crash.
 */
#include "vmm_plugin.h"

#include <string.h>

static const vmm_host_t *the_host;
static unsigned char buf[1 << 16];

static vmm_verdict_t on_port(void *user, vmm_exit_t *ex)
{
    uint64_t gpa = 0, len = 0;
    const vmm_host_pager_t *pager;
    const vmm_host_async_pf_t *apf;
    (void)user;
    if (the_host->get_reg(the_host->host_data, ex->vcpu_id, VMM_REG_RBX, &gpa) != 0 ||
        the_host->get_reg(the_host->host_data, ex->vcpu_id, VMM_REG_RCX, &len) != 0) {
        ex->message = "gpa fixture: get_reg failed";
        return VMM_FAIL;
    }
    /* Lengths above the buffer are only ever refused (outside RAM or above SIZE_MAX/2). */
    int64_t r = the_host->read_guest(the_host->host_data, gpa, buf, (size_t)len);
    the_host->set_reg(the_host->host_data, ex->vcpu_id, VMM_REG_RAX, (uint64_t)r);
    r = the_host->write_guest(the_host->host_data, gpa, buf, (size_t)len);
    the_host->set_reg(the_host->host_data, ex->vcpu_id, VMM_REG_RDX, (uint64_t)r);
    pager = the_host->get_extension(the_host->host_data, VMM_EXT_HOST_PAGER);
    r = pager ? pager->install_page(the_host->host_data, gpa) : 1;
    the_host->set_reg(the_host->host_data, ex->vcpu_id, VMM_REG_RSI, (uint64_t)r);
    apf = the_host->get_extension(the_host->host_data, VMM_EXT_HOST_ASYNC_PF);
    if (apf) {
        vmm_exit_async_pf_t ev;
        memset(&ev, 0, sizeof ev);
        ev.kind = VMM_ASYNC_PF_PAGE_MISSING;
        ev.gpa = gpa;
        ev.size = 4096;
        r = apf->raise(the_host->host_data, ex->vcpu_id, &ev, NULL);
    } else {
        r = 1;
    }
    the_host->set_reg(the_host->host_data, ex->vcpu_id, VMM_REG_RDI, (uint64_t)r);
    return VMM_HANDLED;
}

static int token;

static void *gpa_init(const vmm_host_t *host, const char *config, const char **error_out)
{
    vmm_handler_desc_t d;
    (void)config;
    the_host = host;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.exit_class = VMM_EXIT_PIO;
    d.base = 0x5b0;
    d.length = 1;
    d.flags = VMM_HANDLER_EXCLUSIVE;
    d.handle = on_port;
    d.name = "gpa-port";
    if (host->register_handler(host->host_data, &d, error_out) != 0)
        return NULL;
    return &token;
}

static void gpa_destroy(void *instance) { (void)instance; }

const vmm_plugin_entry_t vmm_plugin_entry = {
    sizeof(vmm_plugin_entry_t), VMM_PLUGIN_ABI_MAJOR, VMM_PLUGIN_ABI_MINOR,
    "org.vmmkit.test.gpa", "0.0.1", "passes guest-chosen addresses to every host service",
    gpa_init, gpa_destroy, NULL,
};
