/* The CMOS RTC's interrupts, as a QEMU test kernel uses them: IRQ 8 through the IOAPIC
 * (redirection entry 8 -> vector 0x58, edge, fixed, APIC 0; the PIC masked). First the
 * periodic interrupt at 64 Hz (register A rate 10, register B PIE) until 8 have come,
 * then the update-ended interrupt (register B UIE) until one says "update ended", then
 * the alarm (register B AIE, binary mode) set 2 seconds ahead, any minute and hour,
 * until one says "alarm". The handler reads register C (which acknowledges it) each
 * time; the kernel prints the periodic phase's flags (IRQ, periodic: 0xC0), the update
 * interrupt's (IRQ, update ended: 0x90) and the alarm's (IRQ, alarm: 0xA0, update ended
 * masked off); ends with debug-exit 0x19. Interrupts are taken in `sti; hlt` only, and
 * the handler returns with them off (IRET_CLI in mb.h). */
#include "mb.h"
#define PIN 8
#define CMOS_WRITE(reg, value) mov $(reg), %al; out %al, $0x70; mov $(value), %al; out %al, $0x71
#define CMOS_READ(reg) mov $(reg), %al; out %al, $0x70; in $0x71, %al
KERNEL_ENTRY
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
    and $0xc0, %eax                 /* IRQ, periodic (update ended comes each second, alarm at 00:00:00) */
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
    CMOS_WRITE(0x0b, 0x06)          /* update interrupt off; binary, 24-hour */
    PUTS(s_update)
    mov last, %eax
    and $0xd0, %eax                 /* IRQ, periodic, update ended (the alarm rings at 00:00:00) */
    call puthex
    PUTS(s_nl)

    CMOS_READ(0x00)                 /* seconds, binary */
    add $2, %al
    cmp $60, %al
    jb 3f
    sub $60, %al
3:  mov %al, %bl
    mov $0x01, %al                  /* alarm seconds */
    out %al, $0x70
    mov %bl, %al
    out %al, $0x71
    CMOS_WRITE(0x03, 0xc0)          /* any minute */
    CMOS_WRITE(0x05, 0xc0)          /* any hour */
    CMOS_READ(0x0c)
    movl $0, last
    CMOS_WRITE(0x0b, 0x26)          /* alarm interrupt on */
4:  sti
    hlt
    testl $0x20, last
    jz 4b
    CMOS_WRITE(0x0b, 0x06)
    PUTS(s_alarm)
    mov last, %eax
    and $0xe0, %eax
    call puthex
    PUTS(s_nl)
    DEBUG_EXIT(0x19)
DEAD_END

rtc_irq:
    push %eax
    CMOS_READ(0x0c)
    movzbl %al, %eax
    mov %eax, last
    or %eax, seen
    incl count
    movl $0, LAPIC + 0xb0           /* EOI */
    pop %eax
    IRET_CLI

MB_HELPERS

    .section .rodata
s_periodic: .asciz "rtc periodic irq flags: "
s_update:   .asciz "rtc update irq flags: "
s_alarm:    .asciz "rtc alarm irq flags: "
s_nl:       .asciz "\n"
    .data
    .align 8
IDTR
count: .long 0
seen: .long 0
last: .long 0
    .bss
    .align 8
idt: .skip 256 * 8
    .section .note.GNU-stack, "", @progbits
