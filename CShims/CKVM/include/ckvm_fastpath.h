/*
 * ckvm_fastpath.h - the shared coalesced-MMIO ring and eventfds, as Swift can use them.
 *
 * The ring page is written by the kernel and read by every vCPU thread of the VM, so
 * its indices need acquire/release ordering, which Swift cannot express on a raw
 * pointer into a foreign mapping. These helpers are that ordering, nothing more.
 */
#ifndef CKVM_FASTPATH_H
#define CKVM_FASTPATH_H

#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <linux/kvm.h>

/* Entries in one ring page (the kernel's KVM_COALESCED_MMIO_MAX for a page size). */
static inline uint32_t ckvm_coalesced_ring_capacity(uint32_t page_size) {
    return (page_size - (uint32_t)sizeof(struct kvm_coalesced_mmio_ring)) /
           (uint32_t)sizeof(struct kvm_coalesced_mmio);
}

/* True when the kernel has queued entries the VMM has not consumed. */
static inline int ckvm_coalesced_ring_pending(const struct kvm_coalesced_mmio_ring *ring) {
    return __atomic_load_n(&ring->first, __ATOMIC_RELAXED) !=
           __atomic_load_n(&ring->last, __ATOMIC_ACQUIRE);
}

/* Copies the oldest entry into *out and returns 1, or returns 0 when the ring is empty.
 * The kernel publishes `last` after the entry (smp_wmb), hence the acquire load. */
static inline int ckvm_coalesced_ring_peek(const struct kvm_coalesced_mmio_ring *ring,
                                           uint32_t capacity, struct kvm_coalesced_mmio *out) {
    uint32_t first = __atomic_load_n(&ring->first, __ATOMIC_RELAXED);
    if (first == __atomic_load_n(&ring->last, __ATOMIC_ACQUIRE) || first >= capacity)
        return 0;
    memcpy(out, &ring->coalesced_mmio[first], sizeof *out);
    return 1;
}

/* Frees the oldest entry; the release store hands the slot back to the kernel. */
static inline void ckvm_coalesced_ring_pop(struct kvm_coalesced_mmio_ring *ring, uint32_t capacity) {
    uint32_t first = __atomic_load_n(&ring->first, __ATOMIC_RELAXED);
    __atomic_store_n(&ring->first, (first + 1) % capacity, __ATOMIC_RELEASE);
}

static inline uint32_t ckvm_coalesced_entry_is_pio(const struct kvm_coalesced_mmio *entry) {
    return entry->pio;
}

static inline void ckvm_coalesced_zone_set_pio(struct kvm_coalesced_mmio_zone *zone, uint32_t pio) {
    zone->pio = pio;
}

/* ioeventfd flags are defined from an enum in the uapi header; Swift cannot import them. */
static const uint32_t CKVM_IOEVENTFD_FLAG_DATAMATCH = KVM_IOEVENTFD_FLAG_DATAMATCH;
static const uint32_t CKVM_IOEVENTFD_FLAG_PIO = KVM_IOEVENTFD_FLAG_PIO;
static const uint32_t CKVM_IOEVENTFD_FLAG_DEASSIGN = KVM_IOEVENTFD_FLAG_DEASSIGN;
static const int CKVM_EFD_CLOEXEC = EFD_CLOEXEC;
static const int CKVM_EFD_NONBLOCK = EFD_NONBLOCK;

static inline int ckvm_eventfd(unsigned int initval, int flags) { return eventfd(initval, flags); }

#endif /* CKVM_FASTPATH_H */
