#include "ckvm.h"

int ckvm_run_entry(void *fd_cell) {
    return ioctl(*(const int *)fd_cell, KVM_RUN, 0);
}
