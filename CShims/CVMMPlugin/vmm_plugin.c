/*
 * The CVMMPlugin target: SwiftPM needs one C source. This file only pins the v1.0
 * layout of vmm_plugin.h on LP64 targets, so that an accidental edit that moves a
 * field (an ABI break, see the header's rules) fails the build.
 */
#include "vmm_plugin.h"

#if defined(__LP64__) && defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L

#define VMM_ASSERT_SIZE(type, size) \
    _Static_assert(sizeof(type) == (size), "ABI break: sizeof(" #type ")")
#define VMM_ASSERT_OFFSET(type, field, off) \
    _Static_assert(offsetof(type, field) == (off), "ABI break: " #type "." #field)

VMM_ASSERT_SIZE(vmm_plugin_entry_t, 56);
VMM_ASSERT_OFFSET(vmm_plugin_entry_t, abi_major, 4);
VMM_ASSERT_OFFSET(vmm_plugin_entry_t, abi_minor, 6);
VMM_ASSERT_OFFSET(vmm_plugin_entry_t, id, 8);
VMM_ASSERT_OFFSET(vmm_plugin_entry_t, version, 16);
VMM_ASSERT_OFFSET(vmm_plugin_entry_t, description, 24);
VMM_ASSERT_OFFSET(vmm_plugin_entry_t, init, 32);
VMM_ASSERT_OFFSET(vmm_plugin_entry_t, destroy, 40);
VMM_ASSERT_OFFSET(vmm_plugin_entry_t, get_extension, 48);

VMM_ASSERT_SIZE(vmm_host_t, 104);
VMM_ASSERT_OFFSET(vmm_host_t, abi_major, 4);
VMM_ASSERT_OFFSET(vmm_host_t, abi_minor, 6);
VMM_ASSERT_OFFSET(vmm_host_t, host_data, 8);
VMM_ASSERT_OFFSET(vmm_host_t, log, 16);
VMM_ASSERT_OFFSET(vmm_host_t, read_guest, 24);
VMM_ASSERT_OFFSET(vmm_host_t, write_guest, 32);
VMM_ASSERT_OFFSET(vmm_host_t, get_reg, 40);
VMM_ASSERT_OFFSET(vmm_host_t, set_reg, 48);
VMM_ASSERT_OFFSET(vmm_host_t, inject_exception, 56);
VMM_ASSERT_OFFSET(vmm_host_t, inject_interrupt, 64);
VMM_ASSERT_OFFSET(vmm_host_t, set_irq_line, 72);
VMM_ASSERT_OFFSET(vmm_host_t, register_handler, 80);
VMM_ASSERT_OFFSET(vmm_host_t, request_stop, 88);
VMM_ASSERT_OFFSET(vmm_host_t, get_extension, 96);

VMM_ASSERT_SIZE(vmm_handler_desc_t, 56);
VMM_ASSERT_OFFSET(vmm_handler_desc_t, exit_class, 4);
VMM_ASSERT_OFFSET(vmm_handler_desc_t, base, 8);
VMM_ASSERT_OFFSET(vmm_handler_desc_t, length, 16);
VMM_ASSERT_OFFSET(vmm_handler_desc_t, priority, 24);
VMM_ASSERT_OFFSET(vmm_handler_desc_t, flags, 28);
VMM_ASSERT_OFFSET(vmm_handler_desc_t, handle, 32);
VMM_ASSERT_OFFSET(vmm_handler_desc_t, user, 40);
VMM_ASSERT_OFFSET(vmm_handler_desc_t, name, 48);

VMM_ASSERT_SIZE(vmm_exit_pio_t, 16);
VMM_ASSERT_OFFSET(vmm_exit_pio_t, size, 2);
VMM_ASSERT_OFFSET(vmm_exit_pio_t, is_write, 3);
VMM_ASSERT_OFFSET(vmm_exit_pio_t, count, 4);
VMM_ASSERT_OFFSET(vmm_exit_pio_t, data, 8);
VMM_ASSERT_SIZE(vmm_exit_mmio_t, 24);
VMM_ASSERT_OFFSET(vmm_exit_mmio_t, len, 8);
VMM_ASSERT_OFFSET(vmm_exit_mmio_t, is_write, 12);
VMM_ASSERT_OFFSET(vmm_exit_mmio_t, data, 16);
VMM_ASSERT_SIZE(vmm_exit_msr_t, 24);
VMM_ASSERT_OFFSET(vmm_exit_msr_t, reason, 4);
VMM_ASSERT_OFFSET(vmm_exit_msr_t, data, 8);
VMM_ASSERT_OFFSET(vmm_exit_msr_t, is_write, 16);
VMM_ASSERT_OFFSET(vmm_exit_msr_t, error, 17);
VMM_ASSERT_SIZE(vmm_exit_memory_fault_t, 40);
VMM_ASSERT_OFFSET(vmm_exit_memory_fault_t, size, 8);
VMM_ASSERT_OFFSET(vmm_exit_memory_fault_t, flags, 16);
VMM_ASSERT_OFFSET(vmm_exit_memory_fault_t, err_no, 24);
VMM_ASSERT_OFFSET(vmm_exit_memory_fault_t, access, 28);
VMM_ASSERT_OFFSET(vmm_exit_memory_fault_t, annotated, 32);
VMM_ASSERT_SIZE(vmm_exit_async_pf_t, 24);
VMM_ASSERT_OFFSET(vmm_exit_async_pf_t, kind, 16);
VMM_ASSERT_OFFSET(vmm_exit_async_pf_t, access, 20);
VMM_ASSERT_SIZE(vmm_exit_other_t, 8);

VMM_ASSERT_SIZE(vmm_exit_t, 168);
VMM_ASSERT_OFFSET(vmm_exit_t, vcpu_id, 4);
VMM_ASSERT_OFFSET(vmm_exit_t, exit_class, 8);
VMM_ASSERT_OFFSET(vmm_exit_t, message, 16);
VMM_ASSERT_OFFSET(vmm_exit_t, pio, 24);
VMM_ASSERT_OFFSET(vmm_exit_t, mmio, 40);
VMM_ASSERT_OFFSET(vmm_exit_t, msr, 64);
VMM_ASSERT_OFFSET(vmm_exit_t, memory_fault, 88);
VMM_ASSERT_OFFSET(vmm_exit_t, async_pf, 128);
VMM_ASSERT_OFFSET(vmm_exit_t, other, 152);
VMM_ASSERT_OFFSET(vmm_exit_t, memory_fault_known_flags, 160); /* 1.2 */

VMM_ASSERT_SIZE(vmm_exit_class_info_t, 8);
VMM_ASSERT_SIZE(vmm_host_coalesced_mmio_t, 16);
VMM_ASSERT_SIZE(vmm_host_ioeventfd_t, 24);
VMM_ASSERT_OFFSET(vmm_host_ioeventfd_t, add_irqfd, 16);
VMM_ASSERT_SIZE(vmm_host_hypercall_t, 16);
VMM_ASSERT_SIZE(vmm_host_async_pf_t, 16);
VMM_ASSERT_OFFSET(vmm_host_async_pf_t, raise, 8);
/* 1.1 */
VMM_ASSERT_SIZE(vmm_host_vcpu_t, 48);
VMM_ASSERT_OFFSET(vmm_host_vcpu_t, kick, 8);
VMM_ASSERT_OFFSET(vmm_host_vcpu_t, inject_nmi, 16);
VMM_ASSERT_OFFSET(vmm_host_vcpu_t, pending_events, 24);
VMM_ASSERT_OFFSET(vmm_host_vcpu_t, route_msrs, 32);
VMM_ASSERT_OFFSET(vmm_host_vcpu_t, set_cpuid_bits, 40);
VMM_ASSERT_SIZE(vmm_host_pager_t, 24);
VMM_ASSERT_OFFSET(vmm_host_pager_t, install_page, 8);
VMM_ASSERT_OFFSET(vmm_host_pager_t, install_page_async, 16);

_Static_assert(VMM_PLUGIN_ABI_LOADABLE(1, 0), "a 1.0 plugin must load in every 1.x host");

#endif
