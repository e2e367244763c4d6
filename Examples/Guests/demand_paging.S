/* Guest payloads for the demand-paging tests (VMMPaging). Run at ring 3 (native) or
 * ring 0 (emulated: keep the work small). Results go out on port 0x20 (low 32 bits)
 * and 0x21 (high 32 bits); port 0xf4 ends the run; no stack is used. */
#include "guest_asm.h"

    .code64

/* Sum the qwords at [RDI, RSI) stepping R8 bytes; then write (address ^ 0x5a5a) to the
 * first qword of R11 pages starting at R10; report the sum; exit. */
BEGIN(dp_checksum)
    xor %eax, %eax
1:  cmp %rsi, %rdi
    jae 2f
    add (%rdi), %rax
    add %r8, %rdi
    jmp 1b
2:  test %r11, %r11
    jz 4f
3:  mov %r10, %rcx
    xor $0x5a5a, %rcx
    mov %rcx, (%r10)
    add $4096, %r10
    dec %r11
    jnz 3b
4:  mov %rax, %rbx
    mov $0x20, %dx
    out %eax, %dx
    shr $32, %rax
    mov $0x21, %dx
    out %eax, %dx
    mov $0xf4, %dx
    xor %eax, %eax
    out %eax, %dx
5:  jmp 5b
END(dp_checksum)

/* An 8-byte read at RDI and an 8-byte write of 0x1122334455667788 at RSI (both meant
 * to straddle two missing pages), then `rep movsq` of R10 qwords from R8 to R9;
 * reports the value read; exits. */
BEGIN(dp_straddle)
    mov (%rdi), %r12
    movabs $0x1122334455667788, %rax
    mov %rax, (%rsi)
    mov %r8, %rsi
    mov %r9, %rdi
    mov %r10, %rcx
    cld
    rep movsq
    mov %r12, %rax
    mov $0x20, %dx
    out %eax, %dx
    shr $32, %rax
    mov $0x21, %dx
    out %eax, %dx
    mov $0xf4, %dx
    xor %eax, %eax
    out %eax, %dx
1:  jmp 1b
END(dp_straddle)

/* Jumps to RDI: a page not present yet, whose snapshot holds dp_stub. */
BEGIN(dp_jump)
    jmp *%rdi
END(dp_jump)

/* Copied into the snapshot file: proves it ran by writing 0x5eed to port 0x22. */
BEGIN(dp_stub)
    mov $0x22, %dx
    mov $0x5eed, %eax
    out %eax, %dx
    mov $0xf4, %dx
    xor %eax, %eax
    out %eax, %dx
1:  jmp 1b
END(dp_stub)
