/*
 * ckvm_async_pf.h - the pieces of the KVM ABI the async page fault support relies on:
 * the MSR filter (to route the three async-PF MSRs to user space) and the exception
 * payload fields of kvm_vcpu_events (to inject #PF with CR2 as a payload). The 6.1
 * headers define both; these asserts pin the layouts Swift reads and writes.
 */
#ifndef CKVM_ASYNC_PF_H
#define CKVM_ASYNC_PF_H

#include <stddef.h>
#include <stdint.h>
#include <linux/kvm.h>

_Static_assert(sizeof(struct kvm_msr_filter_range) == 24, "kvm_msr_filter_range layout");
_Static_assert(offsetof(struct kvm_msr_filter_range, bitmap) == 16, "kvm_msr_filter_range.bitmap");
_Static_assert(offsetof(struct kvm_msr_filter, ranges) == 8, "kvm_msr_filter.ranges");
_Static_assert(KVM_MSR_FILTER_MAX_RANGES == 16, "kvm_msr_filter range count");
_Static_assert(offsetof(struct kvm_vcpu_events, flags) == 20, "kvm_vcpu_events.flags");
_Static_assert(offsetof(struct kvm_vcpu_events, exception_has_payload) == 55, "kvm_vcpu_events payload flag");
_Static_assert(offsetof(struct kvm_vcpu_events, exception_payload) == 56, "kvm_vcpu_events payload");
_Static_assert(KVM_CAP_EXCEPTION_PAYLOAD == 164, "KVM_CAP_EXCEPTION_PAYLOAD");
_Static_assert(KVM_VCPUEVENT_VALID_PAYLOAD == 0x10, "KVM_VCPUEVENT_VALID_PAYLOAD");

#endif /* CKVM_ASYNC_PF_H */
