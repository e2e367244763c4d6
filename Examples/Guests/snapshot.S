/* Guest payload for the snapshot tests (VMMSnapshot). Ring 3, no stack. Each vCPU
 * runs its own copy with its own data pages and output port. */
#include "guest_asm.h"

    .code64

/* RCX rounds over RSI pages from RDI: each round folds the first qword of every page
 * into a hash kept in R9 and writes the hash back into the page (so the result
 * depends on memory the rounds before wrote), then reports the hash's low 32 bits on
 * port R8. Before round R10 it waits at a gate: it reads port 0x23 until that gives
 * non-zero (the host pauses and snapshots the VM there). Port 0xf4 ends the run. */
BEGIN(snap_work)
    xor %r12, %r12
    xor %r9, %r9
    movabs $0x100000001b3, %r15
1:  cmp %rcx, %r12
    jae 9f
    cmp %r10, %r12
    jne 3f
2:  mov $0x23, %dx
    in %dx, %eax
    test %eax, %eax
    jz 2b
3:  mov %rdi, %r13
    mov %rsi, %r14
4:  mov (%r13), %rbx
    add %r12, %rbx
    imul %r15, %rbx
    xor %rbx, %r9
    rol $7, %r9
    mov %r9, (%r13)
    add $4096, %r13
    dec %r14
    jnz 4b
    mov %r8, %rdx
    mov %r9, %rax
    out %eax, %dx
    inc %r12
    jmp 1b
9:  mov $0xf4, %dx
    xor %eax, %eax
    out %eax, %dx
10: jmp 10b
END(snap_work)

/* The task priority in CR8 across a snapshot without an in-kernel LAPIC (KVM then
 * loads CR8 from the run page at every KVM_RUN): sets CR8 to 5, is saved at port 0x11,
 * and reports CR8 after the restore on port 0xf4. */
BEGIN(snap_cr8)
    mov $5, %eax
    mov %rax, %cr8
    mov $0x11, %dx
    out %al, %dx
    mov %cr8, %rax
    mov $0xf4, %dx
    out %al, %dx
    hlt
END(snap_cr8)
