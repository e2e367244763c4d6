/*
 * ckvm_async_pf.h - the pieces of the KVM ABI the async page fault support relies on:
 * the MSR filter (to route the three async-PF MSRs to user space) and the exception
 * payload fields of kvm_vcpu_events (to inject #PF with CR2 as a payload). The 6.1
 * headers define both; these asserts pin the layouts Swift reads and writes.
 *
 * Plus a minimal userfaultfd shim (request numbers and layouts), used by the small
 * pager in Sources/VMMKit/AsyncPF until issue 4's demand-paging engine replaces it.
 */
#ifndef CKVM_ASYNC_PF_H
#define CKVM_ASYNC_PF_H

#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/kvm.h>
#include <linux/userfaultfd.h>

_Static_assert(sizeof(struct kvm_msr_filter_range) == 24, "kvm_msr_filter_range layout");
_Static_assert(offsetof(struct kvm_msr_filter_range, bitmap) == 16, "kvm_msr_filter_range.bitmap");
_Static_assert(offsetof(struct kvm_msr_filter, ranges) == 8, "kvm_msr_filter.ranges");
_Static_assert(KVM_MSR_FILTER_MAX_RANGES == 16, "kvm_msr_filter range count");
_Static_assert(offsetof(struct kvm_vcpu_events, flags) == 20, "kvm_vcpu_events.flags");
_Static_assert(offsetof(struct kvm_vcpu_events, exception_has_payload) == 55, "kvm_vcpu_events payload flag");
_Static_assert(offsetof(struct kvm_vcpu_events, exception_payload) == 56, "kvm_vcpu_events payload");
_Static_assert(KVM_CAP_EXCEPTION_PAYLOAD == 164, "KVM_CAP_EXCEPTION_PAYLOAD");
_Static_assert(KVM_VCPUEVENT_VALID_PAYLOAD == 0x10, "KVM_VCPUEVENT_VALID_PAYLOAD");

/* ---- userfaultfd (minimal; to be replaced by issue 4's engine) ---------------- */
_Static_assert(sizeof(struct uffd_msg) == 32, "uffd_msg size");
_Static_assert(offsetof(struct uffd_msg, arg.pagefault.address) == 16, "uffd_msg pagefault.address");
_Static_assert(offsetof(struct uffd_msg, arg.pagefault.feat.ptid) == 24, "uffd_msg pagefault.ptid");
_Static_assert(sizeof(struct uffdio_copy) == 40, "uffdio_copy size");

static const unsigned long CKVM_UFFDIO_API = UFFDIO_API;
static const unsigned long CKVM_UFFDIO_REGISTER = UFFDIO_REGISTER;
static const unsigned long CKVM_UFFDIO_COPY = UFFDIO_COPY;
static const unsigned long long CKVM_UFFD_API = UFFD_API;

static inline int ckvm_userfaultfd(int flags) { return (int)syscall(SYS_userfaultfd, flags); }
static inline int ckvm_gettid(void) { return (int)syscall(SYS_gettid); }

#endif /* CKVM_ASYNC_PF_H */
