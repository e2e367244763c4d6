/*
 * ckvm_snapshot.h - the state ioctls a snapshot needs, as Swift can use them.
 *
 * Everything here is in the 6.1 uapi headers; the request numbers become constants
 * (Swift cannot expand _IO*), and kvm_msr_list, whose indices end in a flexible array,
 * gets a fixed-capacity twin. The sizes are the ones the snapshot format stores
 * (Docs/SnapshotFormat.md), so a header that changed them breaks the build, not files.
 */
#ifndef CKVM_SNAPSHOT_H
#define CKVM_SNAPSHOT_H

#include <stddef.h>
#include <linux/kvm.h>

static const unsigned long CKVM_GET_MSR_INDEX_LIST = KVM_GET_MSR_INDEX_LIST;
static const unsigned long CKVM_GET_XSAVE = KVM_GET_XSAVE;
static const unsigned long CKVM_GET_XSAVE2 = KVM_GET_XSAVE2;
static const unsigned long CKVM_SET_XSAVE = KVM_SET_XSAVE;
static const unsigned long CKVM_GET_XCRS = KVM_GET_XCRS;
static const unsigned long CKVM_SET_XCRS = KVM_SET_XCRS;
static const unsigned long CKVM_GET_DEBUGREGS = KVM_GET_DEBUGREGS;
static const unsigned long CKVM_SET_DEBUGREGS = KVM_SET_DEBUGREGS;
static const unsigned long CKVM_GET_IRQCHIP = KVM_GET_IRQCHIP;
static const unsigned long CKVM_SET_IRQCHIP = KVM_SET_IRQCHIP;
static const unsigned long CKVM_GET_PIT2 = KVM_GET_PIT2;
static const unsigned long CKVM_SET_PIT2 = KVM_SET_PIT2;
static const unsigned long CKVM_GET_CLOCK = KVM_GET_CLOCK;
static const unsigned long CKVM_SET_CLOCK = KVM_SET_CLOCK;
static const unsigned long CKVM_GET_TSC_KHZ = KVM_GET_TSC_KHZ;
static const unsigned long CKVM_SET_TSC_KHZ = KVM_SET_TSC_KHZ;

/* kvm_msr_list with room for the MSRs this kernel saves (about 100 today). */
#define CKVM_MAX_MSR_INDICES 1024
struct ckvm_msr_list {
    __u32 nmsrs;
    __u32 indices[CKVM_MAX_MSR_INDICES];
};
_Static_assert(offsetof(struct ckvm_msr_list, indices) == offsetof(struct kvm_msr_list, indices), "msr list twin");

/* Sizes stored in the snapshot format, version 1. */
_Static_assert(sizeof(struct kvm_fpu) == 416, "kvm_fpu size");
_Static_assert(sizeof(struct kvm_xsave) == 4096, "kvm_xsave size (without XSAVE2 extra)");
_Static_assert(sizeof(struct kvm_xcrs) == 392, "kvm_xcrs size");
_Static_assert(sizeof(struct kvm_debugregs) == 128, "kvm_debugregs size");
_Static_assert(sizeof(struct kvm_lapic_state) == 1024, "kvm_lapic_state size");
_Static_assert(sizeof(struct kvm_mp_state) == 4, "kvm_mp_state size");
_Static_assert(sizeof(struct kvm_irqchip) == 520, "kvm_irqchip size");
_Static_assert(sizeof(struct kvm_pit_state2) == 112, "kvm_pit_state2 size");
_Static_assert(sizeof(struct kvm_clock_data) == 48, "kvm_clock_data size");
_Static_assert(sizeof(struct kvm_cpuid_entry2) == 40, "kvm_cpuid_entry2 size");
_Static_assert(sizeof(struct kvm_msr_entry) == 16, "kvm_msr_entry size");

#endif
