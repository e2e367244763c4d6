/* The timer as a kernel written for QEMU's `pc` sets it up without reading any table:
 * both PICs masked, the PIT's IRQ 0 taken on I/O APIC pin 2 (vector 0x50; QEMU's KVM
 * routes it there and its MADT and MP table say so), pin 0 routed too (vector 0x51) to
 * see that nothing comes there. PIT channel 0 in mode 2 at ~1 kHz; after five
 * interrupts on pin 2 prints how many came on each pin and ends with debug-exit 0x23.
 * Interrupts are taken in `sti; hlt` only (IRET_CLI). */
#include "mb.h"
KERNEL_ENTRY
    IDT_GATE(0x50, pin2_irq)
    IDT_GATE(0x51, pin0_irq)
    lidt idtr
    IOAPIC_ROUTE(0, 0x51)
    IOAPIC_ROUTE(2, 0x50)
    PIT_PERIODIC(1193)              /* 1193182 Hz / 1193: ~1 kHz */
1:  sti
    hlt
    cmpl $5, pin2s
    jb 1b
    PRINT(s_pin2, pin2s)
    PRINT(s_pin0, pin0s)
    PUTS(s_nl)
    DEBUG_EXIT(0x23)
DEAD_END

pin2_irq:
    incl pin2s
    movl $0, LAPIC + 0xb0           /* EOI */
    IRET_CLI

pin0_irq:
    incl pin0s
    movl $0, LAPIC + 0xb0
    IRET_CLI

MB_HELPERS

    .section .rodata
s_pin2: .asciz "irq0: PIT interrupts on I/O APIC pin 2 "
s_pin0: .asciz ", on pin 0 "
s_nl:   .asciz "\n"
    .data
    .align 8
IDTR
pin2s: .long 0
pin0s: .long 0
    .bss
    .align 8
idt: .skip 256 * 8
    .section .note.GNU-stack, "", @progbits
