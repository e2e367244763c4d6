/* The machine state a Multiboot kernel finds at entry, as QEMU leaves it: a stray magic
 * with a bad checksum before the real header (QEMU passes over it), a header asking for
 * a video mode (flag 2: QEMU boots it without one), a `call` before any stack is set (the
 * option ROM leaves one in ESP), and the GDT's five entries (sgdt: limit 0x27, the 16-bit
 * data segment 0x20 loads). Prints ESP at entry, the GDT limit and the info flags; ends
 * with debug-exit 0x17. */
#include "mb.h"
    .code32
    .section .multiboot, "a"
    .align 4
    .long MB_MAGIC, 0, 0                 /* bad checksum: not a header */
    .long MB_MAGIC, 0x7, -(MB_MAGIC + 0x7)
    .text
    .globl _start
_start:
    cmp $0x2BADB002, %eax
    jne dead
    mov %esp, %edi                      /* ESP as the loader left it */
    mov %ebx, %ebp
    call 1f                             /* needs a stack */
1:  pop %eax
    PUTS(s_esp)
    mov %edi, %eax
    call puthex
    sgdt gdtr
    PUTS(s_gdt)
    movzwl gdtr, %eax
    call puthex
    mov $0x20, %ax                      /* the 16-bit data segment: a #GP if absent */
    mov %ax, %fs
    mov $0x10, %ax
    mov %ax, %fs
    PUTS(s_flags)
    mov (%ebp), %eax
    call puthex
    PUTS(s_nl)
    DEBUG_EXIT(0x17)
DEAD_END

MB_HELPERS

    .section .rodata
s_esp:   .asciz "esp at entry "
s_gdt:   .asciz ", gdt limit "
s_flags: .asciz ", info flags "
s_nl:    .asciz "\n"
    .data
gdtr: .word 0
      .long 0
    .section .note.GNU-stack, "", @progbits
