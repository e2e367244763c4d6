/* fw_cfg's x86 items (bit 15 of the key) as a kernel written for QEMU's pc reads them
 * through the data port (QEMU's hw/i386/fw_cfg.c, fw_cfg_arch_create): four bytes of
 * each of FW_CFG_ACPI_TABLES (0x8000), FW_CFG_SMBIOS_ENTRIES (0x8001), FW_CFG_IRQ0_OVERRIDE
 * (0x8002, little-endian) and FW_CFG_E820_TABLE (0x8003); then FW_CFG_HPET (0x8004), a
 * packed struct hpet_fw_config: a count byte (0xff: no HPET) and eight 15-byte entries
 * (event timer block ID, 64-bit address, 16-bit min tick, page protection byte); the
 * first entry printed, the seven after it and the byte past the struct checked to be
 * zeros; and the count again through key 0xc004 (bit 14, the write channel, masked
 * off). Debug-exit 0x27 at the end. */
#include "mb.h"
#define SCRATCH 0x7000
#define HPETCFG 0x7100              /* 121 bytes of the struct and one past it */
#define VALUE 0x7200
/* ITEM(key, label): four bytes of item `key`, printed as a little-endian dword. */
#define ITEM(key, label) mov $(key), %ax; mov $SCRATCH, %edi; mov $4, %ecx; call fwcfg_read; PRINT(label, SCRATCH)
KERNEL_ENTRY
    cld
    ITEM(0x8000, s_acpi)
    ITEM(0x8001, s_smbios)
    ITEM(0x8002, s_irq0)
    ITEM(0x8003, s_e820)
    mov $0x8004, %ax
    mov $HPETCFG, %edi
    mov $122, %ecx
    call fwcfg_read
    movzbl HPETCFG, %eax
    mov %eax, VALUE
    PRINT(s_count, VALUE)
    PRINT(s_id, HPETCFG + 1)
    PRINT(s_address, HPETCFG + 9)
    mov HPETCFG + 5, %eax
    call puthex
    movzwl HPETCFG + 13, %eax
    mov %eax, VALUE
    PRINT(s_tick, VALUE)
    movzbl HPETCFG + 15, %eax
    mov %eax, VALUE
    PRINT(s_prot, VALUE)
    /* Entries 1-7 (bytes 16-120) and byte 121, past the struct's end: all zeros. */
    mov $(HPETCFG + 16), %edi
    mov $106, %ecx
    xor %eax, %eax
    repe scasb
    sete %al
    mov %eax, VALUE
    PRINT(s_rest, VALUE)
    mov $0xc004, %ax
    mov $SCRATCH, %edi
    mov $1, %ecx
    call fwcfg_read
    movzbl SCRATCH, %eax
    mov %eax, VALUE
    PRINT(s_channel, VALUE)
    PUTS(s_done)
    DEBUG_EXIT(0x27)
dead:
    hlt
    jmp dead

/* fwcfg_read: selects key AX, then ECX bytes of it through the data port to EDI
 * (clobbers ecx, edx, edi). */
fwcfg_read:
    mov $0x510, %dx
    out %ax, %dx
    mov $0x511, %dx
    rep insb
    ret

MB_HELPERS

    .section .rodata
s_acpi: .asciz "fw_cfg arch: acpi tables "
s_smbios: .asciz "\nfw_cfg arch: smbios entries "
s_irq0: .asciz "\nfw_cfg arch: irq0 override "
s_e820: .asciz "\nfw_cfg arch: e820 table "
s_count: .asciz "\nfw_cfg arch: hpet count "
s_id: .asciz "\nfw_cfg arch: hpet 0 block id "
s_address: .asciz " address "
s_tick: .asciz " min tick "
s_prot: .asciz " page prot "
s_rest: .asciz "\nfw_cfg arch: hpet entries 1-7 and past the end zero "
s_channel: .asciz "\nfw_cfg arch: count through 0xc004 "
s_done: .asciz "\nfw_cfg arch: done\n"
    .section .note.GNU-stack, "", @progbits
