/* The fast-path fragment of Plugins/README.md in the init of a device. */
#include "vmm_plugin.h"

#include <stdint.h>

struct device { int irqfd; };

static void rang(void *user, uint64_t count) { (void)user; (void)count; }

void *fastpath_init(const vmm_host_t *host, struct device *dev, uint64_t base, const char **error_out);
void *fastpath_init(const vmm_host_t *host, struct device *dev, uint64_t base, const char **error_out)
{
    // doc-sample: Plugins/README.md #4
    const vmm_host_coalesced_mmio_t *co = host->get_extension(host->host_data, VMM_EXT_HOST_COALESCED_MMIO);
    /* after registering a handler that covers the range: THR writes queue in the kernel */
    if (co && co->add(host->host_data, VMM_SPACE_MMIO, base, 1, error_out) != 0) return NULL;

    const vmm_host_ioeventfd_t *ioe = host->get_extension(host->host_data, VMM_EXT_HOST_IOEVENTFD);
    /* a doorbell: writes of 0x1 (4 bytes) to port 0x30 call rang(dev, n) on a host thread */
    ioe->add(host->host_data, VMM_SPACE_PIO, 0x30, 4, VMM_IOEVENTFD_DATAMATCH, 1, rang, dev, error_out);
    /* an irqfd: writing a uint64_t 1 to *fd raises GSI 4 from any thread */
    ioe->add_irqfd(host->host_data, 4, &dev->irqfd, error_out);
    // doc-sample: end
    return dev;
}
