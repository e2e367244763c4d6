/* Guest payloads for the core's exit tests. Ring-0 code is emulated on kvm_pvm at
 * 1-2 us per instruction, so these stay a few dozen instructions each.
 * Conventions: loaded at GuestLayout.codeStart (0x10000); scratch RAM at 0x20000;
 * test ports 0x10-0x1f; MMIO window at 0xd0000000 (loaded into a register: a disp32
 * absolute address would be sign-extended). */
#include "guest_asm.h"

    .code64

/* out of 1, 2 and 4 bytes to port 0x10 */
BEGIN(pio_out)
    mov $0x10, %dx
    mov $0x41, %al
    out %al, %dx
    mov $0x1234, %ax
    out %ax, %dx
    mov $0xdeadbeef, %eax
    out %eax, %dx
    hlt
END(pio_out)

/* in of 1, 2, 4 bytes from port 0x11, stored at 0x20000/8/10, then echoed to port 0x12 */
BEGIN(pio_in)
    mov $0x11, %dx
    xor %eax, %eax
    in %dx, %al
    mov %eax, 0x20000
    in %dx, %ax
    mov %eax, 0x20008
    in %dx, %eax
    mov %eax, 0x20010
    mov $0x12, %dx
    out %eax, %dx
    hlt
END(pio_in)

/* rep outsb of "abc" to port 0x13, then rep insw of 3 words from port 0x14 to 0x20100 */
BEGIN(pio_string)
    lea 1f(%rip), %rsi
    mov $3, %ecx
    mov $0x13, %dx
    rep outsb
    mov $0x20100, %edi
    mov $3, %ecx
    mov $0x14, %dx
    rep insw
    hlt
1:  .ascii "abc"
END(pio_string)

/* MMIO writes of 1/2/4/8 bytes at 0xd0000000+0/2/4/8; reads of 1/2/4/8 bytes at
 * +0x10/0x12/0x14/0x18 stored at 0x20000/8/10/18; the 8-byte value echoed to +0x20 */
BEGIN(mmio)
    mov $0xd0000000, %ebx
    movb $0x11, (%rbx)
    movw $0x2233, 2(%rbx)
    movl $0x44556677, 4(%rbx)
    movabs $0x8899aabbccddeeff, %rax
    mov %rax, 8(%rbx)
    movzbq 0x10(%rbx), %rax
    mov %rax, 0x20000
    movzwq 0x12(%rbx), %rax
    mov %rax, 0x20008
    mov 0x14(%rbx), %eax
    mov %rax, 0x20010
    mov 0x18(%rbx), %rax
    mov %rax, 0x20018
    mov %rax, 0x20(%rbx)
    hlt
END(mmio)

BEGIN(hlt)
    hlt
END(hlt)

/* #UD with no IDT: triple fault */
BEGIN(ud2)
    ud2
END(ud2)

BEGIN(single_step)
    nop
    mov $1, %eax
    add $2, %eax
    hlt
END(single_step)

/* rdmsr of 0x4b564dff (value stored at 0x20000), wrmsr of 0x5566778811223344 to 0x4b564dfe */
BEGIN(msr)
    mov $0x4b564dff, %ecx
    rdmsr
    mov %eax, 0x20000
    mov %edx, 0x20004
    mov $0x4b564dfe, %ecx
    mov $0x11223344, %eax
    mov $0x55667788, %edx
    wrmsr
    hlt
END(msr)

/* instruction fetch from MMIO space: internal error */
BEGIN(jump_mmio)
    mov $0xd0000000, %eax
    jmp *%rax
END(jump_mmio)

BEGIN(int3)
    int3
    hlt
END(int3)

BEGIN(int_n)
    int $0x80
    hlt
END(int_n)

/* vmcall never returns from KVM_RUN on kvm_pvm: only a kick gets the thread out */
BEGIN(vmcall)
    vmcall
    hlt
END(vmcall)

BEGIN(spin)
1:  jmp 1b
END(spin)

/* Ring 3 (native speed): sum 1..RDI, report the low 32 bits on port 0x20 and the high
 * bits on port 0x21, then exit with code RSI on port 0xf4. */
BEGIN(user_sum)
    xor %rax, %rax
    mov %rdi, %rcx
1:  add %rcx, %rax
    dec %rcx
    jnz 1b
    mov %rax, %rbx
    mov $0x20, %dx
    out %eax, %dx
    shr $32, %rax
    mov $0x21, %dx
    out %eax, %dx
    mov %esi, %eax
    mov $0xf4, %dx
    out %eax, %dx
2:  jmp 2b
END(user_sum)

BEGIN(user_spin)
1:  jmp 1b
END(user_spin)

/* 16-bit real mode: "Hi" on port 0x10, then hlt */
    .code16
BEGIN(real_hello)
    mov $0x10, %dx
    mov $'H', %al
    out %al, %dx
    mov $'i', %al
    out %al, %dx
    hlt
END(real_hello)
    .code64

/* Benchmarks: RCX exits of `out %al, %dx` (DX set by the host), then hlt */
BEGIN(bench_pio)
1:  out %al, %dx
    dec %rcx
    jnz 1b
    hlt
END(bench_pio)

/* RCX MMIO writes to (%rbx), then hlt */
BEGIN(bench_mmio)
1:  mov %eax, (%rbx)
    dec %rcx
    jnz 1b
    hlt
END(bench_mmio)

/* The demo: a greeting on COM1 (0x3f8), then exit code 0 on the debug-exit port 0xf4 */
BEGIN(hello)
    lea 2f(%rip), %rsi
    mov $0x3f8, %dx
1:  lodsb
    test %al, %al
    jz 3f
    out %al, %dx
    jmp 1b
3:  xor %eax, %eax
    mov $0xf4, %dx
    out %al, %dx
    hlt
2:  .asciz "Hello from a 64-bit guest on VMMKit!\n"
END(hello)

    .section .note.GNU-stack, "", @progbits
