/* A higher-half kernel as hobby kernels link them: every section at 0xc0100000 and up,
 * loaded at 1 MiB with AT(), so e_entry (0xc010000c) is a virtual address no memory
 * backs. QEMU's ELF loader moves the entry with its executable segment and enters at
 * the physical 0x10000c; the kernel, before any paging, runs at its load address and
 * reaches its strings by their physical addresses. It prints where it runs and ends with
 * debug-exit 0x15. */
#include "mb.h"
#define KOFF 0xc0000000
#define PHYS_PUTS(label) mov $(label - KOFF), %esi; call puts
KERNEL_START
    cmp $0x2BADB002, %eax
    jne dead
    mov $0x80000, %esp
    call 1f
1:  pop %ebx
    sub $(1b - _start), %ebx        /* where _start runs */
    PHYS_PUTS(s_at)
    mov %ebx, %eax
    call puthex
    PHYS_PUTS(s_nl)
    DEBUG_EXIT(0x15)
DEAD_END

MB_HELPERS

    .section .rodata
s_at: .asciz "higher-half kernel entered at 0x"
s_nl: .asciz "\n"
    .section .note.GNU-stack, "", @progbits
