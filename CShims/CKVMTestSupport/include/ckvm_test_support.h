/*
 * ckvm_test_support.h - a plain C KVM run loop: the baseline the Swift run loop is
 * measured against in Benchmarks/, on the same vCPU and the same guest.
 */
#ifndef CKVM_TEST_SUPPORT_H
#define CKVM_TEST_SUPPORT_H

#include <stdint.h>
#include "ckvm.h"

struct ckvm_raw_result {
    uint64_t exits;     /* PIO + MMIO exits handled */
    uint64_t checksum;  /* sum of the values the guest wrote (proves the data was read) */
    uint32_t last_exit; /* exit reason that ended the loop (KVM_EXIT_HLT normally) */
    int err;            /* 0, or the errno of a failed KVM_RUN */
};

/* Runs KVM_RUN on `vcpu_fd` until an exit other than IO/MMIO, answering each OUT and
 * MMIO write by adding its value to the checksum (IN and MMIO reads get zeros). */
struct ckvm_raw_result ckvm_raw_run_loop(int vcpu_fd, struct kvm_run *run);

#endif
