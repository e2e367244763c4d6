/* An ELF64 guest for the snapshot tests: prints the lines 0000..03ff (hex) on COM1
 * with a busy wait between them, then ends with debug-exit code 5 (status 11). Its
 * console output does not depend on timing, so a run stopped and snapshotted anywhere
 * and then restored must print the rest of the same sequence. After line 01ff it waits
 * for 2^32 TSC cycles (about 1-2 s; unsigned, so a TSC that jumps ends it at once):
 * however fast the host, a stop after less than that lands mid-run. */
    .code64
    .section .text
    .globl _start
_start:
    xor %ebx, %ebx              /* the counter */
    mov $0x3f8, %dx
1:  mov %ebx, %edi
    shl $16, %edi               /* the counter's 16 bits on top, for rol */
    mov $4, %ecx
2:  rol $4, %edi
    mov %edi, %eax
    and $0xf, %eax
    lea digits(%rip), %rsi
    movzbl (%rsi,%rax), %eax
    out %al, %dx
    loop 2b
    mov $'\n', %al
    out %al, %dx
    mov $400, %ecx              /* ring 0 is emulated here: a few ms per line */
3:  loop 3b
    inc %ebx
    cmp $0x200, %ebx
    jne 4f
    rdtsc                       /* the pause half-way: edx:eax now */
    shl $32, %rdx
    or %rax, %rdx
    mov %rdx, %r8
5:  rdtsc
    shl $32, %rdx
    or %rax, %rdx
    sub %r8, %rdx
    shr $32, %rdx
    jz 5b
    mov $0x3f8, %dx
4:  cmp $0x400, %ebx
    jne 1b
    mov $5, %al
    mov $0xf4, %dx
    out %al, %dx
    hlt
    .section .rodata
digits: .ascii "0123456789abcdef"
    .section .note.GNU-stack, "", @progbits
