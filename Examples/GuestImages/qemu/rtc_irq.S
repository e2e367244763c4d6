/* The CMOS RTC's interrupts, as a QEMU test kernel uses them: IRQ 8 through the IOAPIC
 * (redirection entry 8 -> vector 0x58, edge, fixed, APIC 0; the PIC masked). First the
 * periodic interrupt at 64 Hz (register A rate 10, register B PIE) until 8 have come,
 * then the update-ended interrupt (register B UIE) until one says "update ended". The
 * handler reads register C (which acknowledges it) each time; the kernel prints the
 * periodic phase's flags (IRQ, periodic: 0xC0) and the update interrupt's (IRQ, update
 * ended: 0x90); ends with debug-exit 0x19. Interrupts are taken in `sti; hlt` only, and
 * the handler returns with them off (see lapic_timer.S on IRET). */
#include "mb.h"
#define PIN 8
#define CMOS_WRITE(reg, value) mov $(reg), %al; out %al, $0x70; mov $(value), %al; out %al, $0x71
#define CMOS_READ(reg) mov $(reg), %al; out %al, $0x70; in $0x71, %al
KERNEL_START
    cmp $0x2BADB002, %eax
    jne dead
    mov $0x80000, %esp
    IDT_GATE(0x58, rtc_irq)
    lidt idtr
    IOAPIC_ROUTE(PIN, 0x58)         /* the PICs masked: the IOAPIC delivers */

    CMOS_WRITE(0x0a, 0x2a)          /* rate 10: 64 Hz */
    CMOS_WRITE(0x0b, 0x42)          /* periodic interrupt on, 24-hour, BCD */
    CMOS_READ(0x0c)
1:  sti
    hlt
    cmpl $8, count
    jb 1b
    CMOS_WRITE(0x0b, 0x02)          /* periodic off */
    CMOS_READ(0x0c)
    mov seen, %eax
    and $0xe0, %eax                 /* IRQ, periodic, alarm (update ended comes each second) */
    push %eax
    PUTS(s_periodic)
    pop %eax
    call puthex
    PUTS(s_nl)

    movl $0, last
    CMOS_WRITE(0x0b, 0x12)          /* update-ended interrupt on */
2:  sti
    hlt
    testl $0x10, last
    jz 2b
    CMOS_WRITE(0x0b, 0x02)
    PUTS(s_update)
    mov last, %eax
    call puthex
    PUTS(s_nl)
    DEBUG_EXIT(0x19)
dead:
    cli
    hlt
    jmp dead

rtc_irq:
    push %eax
    CMOS_READ(0x0c)
    movzbl %al, %eax
    mov %eax, last
    or %eax, seen
    incl count
    movl $0, LAPIC + 0xb0           /* EOI */
    pop %eax
    pop %edi                        /* IRET spelled out, interrupts left off */
    add $8, %esp
    jmp *%edi

MB_HELPERS

    .section .rodata
s_periodic: .asciz "rtc periodic irq flags: "
s_update:   .asciz "rtc update irq flags: "
s_nl:       .asciz "\n"
    .data
    .align 8
idtr: .word 256 * 8 - 1
      .long idt
count: .long 0
seen: .long 0
last: .long 0
    .bss
    .align 8
idt: .skip 256 * 8
    .section .note.GNU-stack, "", @progbits
