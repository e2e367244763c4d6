/* QEMU's pc-testdev from a test kernel (`--plugin PCTestDev`): the scratch port and
 * MMIO window hold what is written; IRQ line 10, raised through port 0x200a, reaches
 * the CPU through the IOAPIC (redirection entry 10 -> vector 0x50, edge, fixed, APIC 0;
 * the PIC masked). Prints what it saw; ends with debug-exit 0x17. */
#include "mb.h"
#define PIN 10
KERNEL_START
    mov $0x80000, %esp
    mov $0x12345678, %eax           /* scratch port */
    mov $0xe0, %dx
    out %eax, %dx
    xor %eax, %eax
    in %dx, %eax
    push %eax
    PUTS(s_port)
    pop %eax
    call puthex
    movl $0xcafef00d, 0xff000010    /* MMIO scratch */
    PUTS(s_mmio)
    mov 0xff000010, %eax
    call puthex
    PUTS(s_nl)
    mov $0x100000, %eax             /* flush page: accepted */
    mov $0xe4, %dx
    out %eax, %dx

    IDT_GATE(0x50, irq)
    lidt idtr
    IOAPIC_ROUTE(PIN, 0x50)         /* the PICs masked: the IOAPIC delivers */
    mov $1, %al                     /* raise line PIN while interrupts are off */
    mov $(0x2000 + PIN), %dx
    out %al, %dx
    sti
1:  hlt
    cmpl $0, taken
    je 1b
    cli
    xor %al, %al                    /* lower it */
    mov $(0x2000 + PIN), %dx
    out %al, %dx
    PUTS(s_irq)
    DEBUG_EXIT(0x17)
DEAD_END

irq:
    incl taken
    movl $0, LAPIC + 0xb0           /* EOI */
    IRET_STI

MB_HELPERS

    .section .rodata
s_port: .asciz "scratch port: "
s_mmio: .asciz " mmio scratch: "
s_irq:  .asciz "irq line 10 -> ioapic -> vector 0x50\n"
s_nl:   .asciz "\n"
    .data
    .align 8
IDTR
taken: .long 0
    .bss
    .align 8
idt: .skip 256 * 8
    .section .note.GNU-stack, "", @progbits
