/* An ELF64 guest for `vmm run`: entered in 64-bit long mode at _start (ring 0).
 * Prints a line on COM1 and ends with debug-exit code 0 (process status 1 by the
 * isa-debug-exit convention (v << 1) | 1). */
    .code64
    .section .text
    .globl _start
_start:
    lea msg(%rip), %rsi
    mov $0x3f8, %dx
1:  lodsb
    test %al, %al
    jz 2f
    out %al, %dx
    jmp 1b
2:  xor %eax, %eax
    mov $0xf4, %dx
    out %al, %dx
    hlt
    .section .rodata
msg: .asciz "Hello from an ELF64 guest\n"
    .section .note.GNU-stack, "", @progbits
