/* Guest payloads for the async page fault plumbing and end-to-end tests.
 * Loaded at 0x10000; scratch results at 0x20000; IDT at 0xb000 (GuestLayout.idt).
 * Ring-0 code is emulated on kvm_pvm (1-2 us per instruction): keep it short. */
#include "guest_asm.h"

    .code64

/* CPUID 0x40000001 EAX stored at 0x20000. */
BEGIN(apf_cpuid)
    mov $0x40000001, %eax
    cpuid
    mov %eax, 0x20000
    hlt
END(apf_cpuid)

/* The three MSRs through the filter: vector 0xf3, then enable with the area at
 * 0x20040; reads EN back into 0x20000. Then a write with reserved bit 4 set, which
 * the host refuses: the #GP handler stores 0x6770 ("gp") at 0x20008 and the error
 * code at 0x20010. */
BEGIN(apf_msr)
    IDT_GATE(13, 1f)
    lidt 9f(%rip)
    mov $MSR_APF_INT, %ecx
    mov $0xf3, %eax
    xor %edx, %edx
    wrmsr
    mov $MSR_APF_EN, %ecx
    mov $0x20049, %eax
    wrmsr
    rdmsr
    mov %eax, 0x20000
    mov %edx, 0x20004
    mov $MSR_APF_ACK, %ecx
    mov $1, %eax
    wrmsr
    mov $MSR_APF_EN, %ecx
    mov $0x20059, %eax
    wrmsr
    hlt
1:  movq $0x6770, 0x20008
    pop %rax
    mov %rax, 0x20010
    hlt
9:  .word 0xfff
    .quad 0xb000
END(apf_msr)

/* #PF injected by the host after `out` to port 0x10: the handler stores CR2 at
 * 0x20000, the error code at 0x20008 and the return RIP at 0x20010; the address of
 * the instruction after the `out` is at 0x20018 for comparison. */
BEGIN(apf_inject_pf)
    IDT_GATE(14, 1f)
    lidt 9f(%rip)
    lea 2f(%rip), %rax
    mov %rax, 0x20018
    mov $0x10, %dx
    out %al, %dx
2:  hlt
1:  mov %cr2, %rax
    mov %rax, 0x20000
    pop %rax
    mov %rax, 0x20008
    mov (%rsp), %rax
    mov %rax, 0x20010
    hlt
9:  .word 0xfff
    .quad 0xb000
END(apf_inject_pf)

/* External interrupt 0xf3 through KVM_INTERRUPT: first requested while IF = 0 (the
 * host must wait for the interrupt window the `sti` opens), then while IF = 1. The
 * handler counts at 0x20000; `out` to port 0x10 asks the host for an interrupt. */
BEGIN(apf_interrupt)
    IDT_GATE(0xf3, 1f)
    lidt 9f(%rip)
    cli
    mov $0x10, %dx
    out %al, %dx
    movl $0x1234, 0x20008
    sti
3:  cmpl $1, 0x20000
    jne 3b
    out %al, %dx
4:  cmpl $2, 0x20000
    jne 4b
    hlt
1:  incl 0x20000
    iretq
9:  .word 0xfff
    .quad 0xb000
END(apf_interrupt)

/* An interrupt-window request that a snapshot must keep. With IF = 0 the host is asked
 * for vector 0xf3 at port 0x10 (it can only request the window) and saves the vCPU at
 * port 0x11; the restored vCPU enables interrupts and waits a bounded while. Port 0xf4
 * reports how often the handler ran: 1 when the restored vCPU still asked for the
 * window, 0 when the request was lost (a restored guest that waited unbounded would
 * hang instead). */
BEGIN(apf_window_snap)
    IDT_GATE(0xf3, 1f)
    lidt 9f(%rip)
    cli
    mov $0x10, %dx
    out %al, %dx
    mov $0x11, %dx
    out %al, %dx
    sti
    mov $10000, %ecx
3:  cmpl $0, 0x20000
    jne 5f
    loop 3b
5:  mov 0x20000, %eax
    mov $0xf4, %dx
    out %al, %dx
    hlt
1:  incl 0x20000
    iretq
9:  .word 0xfff
    .quad 0xb000
END(apf_window_snap)

/* The "ready" vector through the in-kernel LAPIC (an MSI from the host): enable the
 * APIC, ask twice (port 0x10) with IF = 0 then IF = 1; the handler counts at 0x20000
 * and sends EOI. With an irqchip HLT does not exit, so it ends on port 0xf4. */
BEGIN(apf_interrupt_lapic)
    IDT_GATE(0xf3, 1f)
    lidt 9f(%rip)
    mov $0xfee00000, %ebx
    movl $0x1ff, 0xf0(%rbx)     /* spurious-vector register: APIC software-enabled */
    cli
    mov $0x10, %dx
    out %al, %dx
    movl $0x1234, 0x20008
    cmpl $0, 0x20000            /* IF = 0: nothing may have arrived yet */
    jne 5f
    sti
3:  cmpl $1, 0x20000
    jne 3b
    out %al, %dx
4:  cmpl $2, 0x20000
    jne 4b
5:  mov 0x20000, %eax
    mov $0xf4, %dx
    out %al, %dx
    hlt
1:  incl 0x20000
    push %rbx
    mov $0xfee000b0, %ebx
    movl $0, (%rbx)             /* EOI */
    pop %rbx
    iretq
9:  .word 0xfff
    .quad 0xb000
END(apf_interrupt_lapic)
