/* The demo guest (ELF64, `scripts/demo`): prints on COM1, exercises an MMIO device
 * (the ScratchDevice plugin's registers at 0xe0001000), then runs the async-page-fault
 * kernel (Examples/Guests/async_pf_kernel.S, linked in): task A reads 16 pages at
 * 0x200000 that are demand-paged from a snapshot by the MemoryFault plugin, task B runs
 * while A waits when the host delivers async page faults. A's finish comes back here
 * (the kernel's demo hook), which prints what happened and halts: status 0. */
#define PAGES 16
    .code64
    .section .text
    .globl _start
_start:
    lea banner(%rip), %rsi
    call puts
    /* MMIO: write a register of the scratch device, read it back. */
    mov $0xe0001000, %ebx
    movl $0x1234abcd, 8(%rbx)
    mov 8(%rbx), %eax
    lea mmio_bad(%rip), %rsi
    cmp $0x1234abcd, %eax
    jne 1f
    lea mmio_ok(%rip), %rsi
1:  call puts
    /* Async PF kernel parameters (see async_pf_kernel.S). */
    movq $PAGES, 0x20158
    movq $0, 0x20160
    lea finish(%rip), %rax
    mov %rax, 0x201a0
    mov $1, %eax                /* CPUID.1:EDX.APIC: an in-kernel LAPIC (not with */
    cpuid                       /* --irqchip none): the kernel enables it, EOIs "ready" */
    bt $9, %edx
    jnc 1f
    movq $1, 0x201c0
1:  jmp guest_apf_kernel_start

/* Back at ring 0 from task A's last instruction. */
finish:
    mov $0x10000, %rsp
    lea s_pages(%rip), %rsi
    call puts
    mov $PAGES, %rax
    call putdec
    lea s_sum(%rip), %rsi
    call puts
    xor %rax, %rax              /* sum of the first qword of each page */
    xor %rcx, %rcx
2:  mov %rcx, %rdx
    shl $4, %rdx
    add 0x21000(%rdx), %rax
    inc %rcx
    cmp $PAGES, %rcx
    jb 2b
    call puthex
    lea s_apf(%rip), %rsi
    call puts
    mov 0x20150, %rax
    test %rax, %rax
    jnz 3f
    lea s_off(%rip), %rsi
    call puts
    jmp 4f
3:  mov 0x20100, %rax
    call putdec
    lea s_np(%rip), %rsi
    call puts
    mov 0x20108, %rax
    call putdec
    lea s_ready(%rip), %rsi
    call puts
    mov 0x20110, %rax
    call putdec
    lea s_b(%rip), %rsi
    call puts
4:  lea s_bye(%rip), %rsi
    call puts
5:  hlt
    jmp 5b

#include "console64.inc"

putdec:                         /* RAX in decimal */
    mov $10, %rcx
    xor %rdi, %rdi
1:  xor %rdx, %rdx
    div %rcx
    push %rdx
    inc %rdi
    test %rax, %rax
    jnz 1b
    mov $0x3f8, %dx
2:  pop %rax
    add $'0', %al
    out %al, %dx
    dec %rdi
    jnz 2b
    ret

    .section .rodata
banner:  .asciz "VMMKit demo: a 64-bit guest under the vmm launcher\n"
mmio_ok: .asciz "mmio: scratch register 2 holds 0x1234abcd after a write and a read\n"
mmio_bad: .asciz "mmio: the scratch register did not read back\n"
s_pages: .asciz "demand paging: task A read "
s_sum:   .asciz " pages from the snapshot, checksum "
s_apf:   .asciz "\nasync page faults: "
s_off:   .asciz "not offered by the host (task A stalled on each page)\n"
s_np:    .asciz " not present, "
s_ready: .asciz " ready; task B ran "
s_b:     .asciz " iterations meanwhile\n"
s_bye:   .asciz "demo: done, halting\n"
    .section .note.GNU-stack, "", @progbits
