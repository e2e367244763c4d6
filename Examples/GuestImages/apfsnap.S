/* The async-PF guest of the snapshot tests (ELF64; the demo's two-task kernel,
 * Examples/Guests/async_pf_kernel.S, linked in): prints a start line, then task A reads
 * 16 pages at 0x200000 (demand-paged by the MemoryFault plugin from demo-data.mem, with
 * async page faults: B runs while A waits) and task B counts to a fixed target of
 * B_TARGET, which takes a second or more at ring 3: a pause after the start line lands
 * mid-run. Everything it prints is independent of timing (the pages' checksum, B's
 * final count), so a run paused, snapshotted and restored anywhere prints the same as
 * an uninterrupted one. Ends halted (status 0). */
#define PAGES 16
#define B_TARGET 0x40000000
    .code64
    .section .text
    .globl _start
_start:
    lea s_start(%rip), %rsi
    call puts
    movq $PAGES, 0x20158
    movq $B_TARGET, 0x20160
    lea finish(%rip), %rax
    mov %rax, 0x201a0
    mov $1, %eax                /* CPUID.1:EDX.APIC: an in-kernel LAPIC (not with */
    cpuid                       /* --irqchip none): the kernel enables it, EOIs "ready" */
    bt $9, %edx
    jnc 1f
    movq $1, 0x201c0
1:  jmp guest_apf_kernel_start

/* Back at ring 0 from the last task's final instruction (the kernel's demo hook). */
finish:
    mov $0x10000, %rsp
    lea s_sum(%rip), %rsi
    call puts
    xor %rax, %rax              /* sum of the first and last qword of each page */
    xor %rcx, %rcx
1:  add 0x21000(,%rcx,8), %rax
    inc %rcx
    cmp $(2 * PAGES), %rcx
    jb 1b
    call puthex
    lea s_b(%rip), %rsi
    call puts
    mov 0x20110, %rax
    call puthex
    lea s_apf(%rip), %rsi
    call puts
    mov 0x20150, %rax
    add $'0', %al
    mov $0x3f8, %dx
    out %al, %dx
    lea s_done(%rip), %rsi
    call puts
2:  hlt
    jmp 2b

#include "console64.inc"

    .section .rodata
s_start: .asciz "apf-snap: start\n"
s_sum:   .asciz "apf-snap: 16 pages, checksum "
s_b:     .asciz ", task B counted to "
s_apf:   .asciz ", async page faults "
s_done:  .asciz "\napf-snap: done\n"
    .section .note.GNU-stack, "", @progbits
