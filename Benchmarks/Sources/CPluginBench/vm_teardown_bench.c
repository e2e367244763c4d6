#include "cplugin_bench.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* The VM as the launcher builds it for a trivial guest, less its memory: the irqchip,
 * the PIT as `createPIT` makes it (optional) and one vCPU. The vCPU's fd is closed
 * here, so that closing the VM's fd destroys it there and then. */
int vm_teardown_prepare(int with_pit)
{
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0)
        return -1;
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    close(kvm);
    if (vm < 0)
        return -1;
    struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
    int vcpu = -1;
    if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0 || (with_pit && ioctl(vm, KVM_CREATE_PIT2, &pit) < 0)
        || (vcpu = ioctl(vm, KVM_CREATE_VCPU, 0)) < 0) {
        close(vm);
        return -1;
    }
    close(vcpu);
    return vm;
}
