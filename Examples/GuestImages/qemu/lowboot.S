/* A kernel linked at 0x8000, as real-mode-entry kernels are: loaded over what used to
 * be the launcher's table area, it leaves protected mode for real mode (through a
 * 16-bit segment of its own GDT), prints from real mode, returns to protected mode,
 * prints its Multiboot command line (the info must have landed elsewhere, intact) and
 * ends with debug-exit 0x13. */
#include "mb.h"
KERNEL_START
    cmp $0x2BADB002, %eax
    jne dead
    mov %ebx, info
    mov $0x7000, %esp
    lgdt gdtr
    ljmp $0x08, $1f
1:  mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    PUTS(s_pm)
    ljmp $0x18, $pm16
    .code16
pm16:
    mov $0x20, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %cr0, %eax
    and $0xfffffffe, %eax
    mov %eax, %cr0
    ljmp $0, $real
real:
    xor %ax, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $0x7000, %sp
    mov $s_real, %si
    mov $0x3f8, %dx
2:  lodsb
    test %al, %al
    jz 3f
    out %al, %dx
    jmp 2b
3:  mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    .byte 0x66, 0xea                /* ljmpl $0x08, $back */
    .long back
    .word 0x08
    .code32
back:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    PUTS(s_back)
    mov info, %ebx
    mov 16(%ebx), %esi              /* cmdline */
    call puts
    PUTS(s_nl)
    DEBUG_EXIT(0x13)
DEAD_END

MB_HELPERS

    .section .rodata
s_pm:   .asciz "protected mode at 0x8000\n"
s_real: .asciz "real mode\n"
s_back: .asciz "protected mode again, cmdline: "
s_nl:   .asciz "\n"
    .data
    .align 8
gdt:  .quad 0
      .quad 0x00cf9a000000ffff      /* 0x08 code32 */
      .quad 0x00cf92000000ffff      /* 0x10 data32 */
      .quad 0x00009a000000ffff      /* 0x18 code16 */
      .quad 0x000092000000ffff      /* 0x20 data16 */
gdtr: .word 5 * 8 - 1
      .long gdt
info: .long 0
    .section .note.GNU-stack, "", @progbits
