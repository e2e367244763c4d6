/* A PVH kernel (ELF32 with Xen's PHYS32_ENTRY note, no Multiboot header), written as
 * for QEMU's -kernel: entered at the note's address in 32-bit protected mode, paging
 * off, EBX = the hvm_start_info. Prints the start info's magic, version and RSDP (its address
 * and signature), the command
 * line, the first module's contents and the memory map, then ends with debug-exit 0x21.
 * The ELF entry (e_entry) is a trap that exits with 0x66: only the note may be used. */
#include "mb.h"
#define XEN_ELFNOTE_PHYS32_ENTRY 18
    .section .note.Xen, "a", @note
    .align 4
    .long 4, 4, XEN_ELFNOTE_PHYS32_ENTRY /* namesz, descsz, type */
    .asciz "Xen"
    .long pvh_start
    .align 4

    .code32
    .text
    .globl _start
_start:                             /* e_entry: not the PVH entry */
    DEBUG_EXIT(0x66)
    jmp dead
pvh_start:
    mov $0x80000, %esp
    mov %ebx, %ebp
    PUTS(s_magic)
    mov (%ebp), %eax                /* magic */
    call puthex
    PUTS(s_version)
    mov 4(%ebp), %eax
    call puthex
    PUTS(s_rsdp)
    mov 32(%ebp), %eax              /* rsdp_paddr (low half), and its signature */
    call puthex
    mov 32(%ebp), %esi
    test %esi, %esi
    jz 6f
    mov $8, %ecx
    mov $0x3f8, %dx
    mov $'[', %al
    out %al, %dx
7:  lodsb
    out %al, %dx
    loop 7b
    mov $']', %al
    out %al, %dx
6:  PUTS(s_cmdline)
    mov 24(%ebp), %esi              /* cmdline_paddr (low half; below 4 GiB) */
    test %esi, %esi
    jz 1f
    call puts                       /* the string at ESI */
1:  PUTS(s_module)
    cmpl $0, 12(%ebp)               /* nr_modules */
    je 3f
    mov 16(%ebp), %ebx              /* modlist_paddr */
    mov (%ebx), %esi                /* paddr */
    mov 8(%ebx), %ecx               /* size */
    add %esi, %ecx
    mov $0x3f8, %dx
2:  cmp %ecx, %esi
    jae 3f
    lodsb
    out %al, %dx
    jmp 2b
3:  mov 40(%ebp), %ebx              /* memmap_paddr */
    mov 48(%ebp), %edi              /* memmap_entries */
4:  test %edi, %edi
    jz 5f
    PUTS(s_map)
    mov 4(%ebx), %eax               /* addr high, low */
    call puthex
    mov (%ebx), %eax
    call puthex
    PUTS(s_len)
    mov 12(%ebx), %eax              /* size high, low */
    call puthex
    mov 8(%ebx), %eax
    call puthex
    PUTS(s_type)
    mov 16(%ebx), %eax
    call puthex
    add $24, %ebx
    dec %edi
    jmp 4b
5:  PUTS(s_nl)
    DEBUG_EXIT(0x21)
DEAD_END

MB_HELPERS

    .section .rodata
s_magic:   .asciz "pvh: magic "
s_version: .asciz " version "
s_rsdp: .asciz " rsdp "
s_cmdline: .asciz "\ncmdline: "
s_module:  .asciz "\nmodule: "
s_map:     .asciz "\nmmap "
s_len:     .asciz " len "
s_type:    .asciz " type "
s_nl:      .asciz "\n"
    .section .note.GNU-stack, "", @progbits
