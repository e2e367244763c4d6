/* QEMU's debug console (-debugcon, port 0xe9), as hobby kernels and SeaBIOS use it:
 * detect it by its readback (0xe9; unassigned I/O reads 0xff), then print through it a
 * byte at a time, with `rep outsb`, and with a word write (its low byte only). Reads
 * with `rep insb` and `in ax` must give the readback (zero-extended). The verdict goes
 * to COM1 and the exit code: 0x11 found and every check passed, 0x12 absent, 0x13 a
 * read gave something else. */
#include "mb.h"
#define SCRATCH 0x7000
KERNEL_START
    mov $0x80000, %esp
    in $0xe9, %al
    cmp $0xe9, %al
    jne absent
    mov $s_bytes, %esi
1:  lodsb
    test %al, %al
    jz 2f
    out %al, $0xe9
    jmp 1b
2:  mov $0xe9, %dx
    mov $s_rep, %esi
    mov $(s_rep_end - s_rep), %ecx
    cld
    rep outsb
    mov $0x0a21, %ax            /* '!' in the low byte, '\n' in the high one */
    out %ax, %dx
    mov $'\n', %al
    out %al, %dx
    movl $0, SCRATCH
    mov $SCRATCH, %edi
    mov $4, %ecx
    rep insb
    cmpl $0xe9e9e9e9, SCRATCH
    jne wrong
    mov $0xffff, %eax
    in %dx, %ax
    cmp $0x00e9, %eax
    jne wrong
    PUTS(s_found)
    DEBUG_EXIT(0x11)
absent:
    PUTS(s_absent)
    DEBUG_EXIT(0x12)
wrong:
    PUTS(s_wrong)
    DEBUG_EXIT(0x13)

MB_HELPERS

    .section .rodata
s_bytes: .asciz "debugcon: a byte at a time\n"
s_rep: .ascii "debugcon: rep outsb\ndebugcon: a word writes its low byte: "
s_rep_end:
s_found: .asciz "debug console found\n"
s_absent: .asciz "no debug console\n"
s_wrong: .asciz "debug console read back something other than 0xe9\n"
    .section .note.GNU-stack, "", @progbits
