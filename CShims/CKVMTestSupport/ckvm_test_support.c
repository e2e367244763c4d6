#include <string.h>
#include "ckvm_test_support.h"

struct ckvm_raw_result ckvm_raw_run_loop(int vcpu_fd, struct kvm_run *run) {
    struct ckvm_raw_result r = {0, 0, 0, 0};
    for (;;) {
        if (ioctl(vcpu_fd, KVM_RUN, 0) < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            r.err = errno;
            return r;
        }
        switch (run->exit_reason) {
        case KVM_EXIT_IO: {
            uint8_t *data = (uint8_t *)run + run->io.data_offset;
            uint32_t bytes = (uint32_t)run->io.size * run->io.count;
            if (run->io.direction == KVM_EXIT_IO_OUT) {
                uint32_t v = 0;
                memcpy(&v, data, bytes < 4 ? bytes : 4);
                r.checksum += v;
            } else {
                memset(data, 0, bytes);
            }
            r.exits++;
            break;
        }
        case KVM_EXIT_MMIO: {
            if (run->mmio.is_write) {
                uint64_t v = 0;
                memcpy(&v, run->mmio.data, run->mmio.len <= 8 ? run->mmio.len : 8);
                r.checksum += v;
            } else {
                memset(run->mmio.data, 0, sizeof run->mmio.data);
            }
            r.exits++;
            break;
        }
        default:
            r.last_exit = run->exit_reason;
            return r;
        }
    }
}
