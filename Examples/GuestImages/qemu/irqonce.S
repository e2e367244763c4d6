/* An interrupt taken once, acknowledged late: the device named by the command line's last
 * word ("rtc8": the RTC's periodic interrupt on IRQ 8; "kbd1": a byte the i8042 queues
 * itself, IRQ 1; "ata0": IDENTIFY on the --hda disk, IRQ 14) interrupts through the I/O
 * APIC, and the handler says so and waits for the ACPI power button (PM1a status bit 8,
 * polled) before it acknowledges the device (register C, port 0x60, the status register)
 * and sends the EOI. A snapshot taken while it waits and restored in a new process must
 * leave the guest with the one interrupt an uninterrupted run takes. Prints the count,
 * debug-exit 0x27. */
#include "mb.h"
#define CMOS_WRITE(reg, value) mov $(reg), %al; out %al, $0x70; mov $(value), %al; out %al, $0x71
#define CMOS_READ(reg) mov $(reg), %al; out %al, $0x70; in $0x71, %al
KERNEL_ENTRY
    cld
    mov %ebx, %esi
    call cmdline_end
    CMDLINE_FLAG(0x38637472, mode_rtc)   /* "rtc8" */
    CMDLINE_FLAG(0x3164626b, mode_kbd)   /* "kbd1" */
    CMDLINE_FLAG(0x30617461, mode_ata)   /* "ata0" */
    IDT_GATE(0x58, rtc_irq)
    IDT_GATE(0x41, kbd_irq)
    IDT_GATE(0x4e, ata_irq)
    lidt idtr
    cmpb $0, mode_rtc
    je 1f
    IOAPIC_ROUTE(8, 0x58)
    CMOS_WRITE(0x0a, 0x2f)              /* rate 15: 2 Hz */
    CMOS_WRITE(0x0b, 0x42)              /* periodic interrupt on, 24-hour */
    CMOS_READ(0x0c)
    jmp wait
1:  cmpb $0, mode_kbd
    je 2f
    IOAPIC_ROUTE(1, 0x41)
    mov $0x60, %al                      /* configuration: the keyboard's interrupt only */
    out %al, $0x64
    mov $0x01, %al
    out %al, $0x60
    mov $0xd2, %al                      /* queue 0x55 as the keyboard's byte */
    out %al, $0x64
    mov $0x55, %al
    out %al, $0x60
    jmp wait
2:  cmpb $0, mode_ata
    je dead
    IOAPIC_ROUTE(14, 0x4e)
    mov $0x3f6, %dx                     /* nIEN clear: interrupts on */
    mov $0x00, %al
    out %al, %dx
    mov $0x1f6, %dx
    mov $0xa0, %al
    out %al, %dx
    mov $0x1f7, %dx
    mov $0xec, %al                      /* IDENTIFY DEVICE */
    out %al, %dx
wait:
    sti
    hlt
    cmpl $0, count
    je wait
    /* A second interrupt, if one is pending, is injected at the next entry into the guest
     * with interrupts on: port 0x80's exits (QEMU's ioport80) are such entries. */
    mov $16, %ecx
3:  in $0x80, %al
    loop 3b
    cli
    PRINT(s_count, count)
    PUTS(s_nl)
    DEBUG_EXIT(0x27)
DEAD_END

/* The first time: say so, wait for the power button, clear its status bit. */
first:
    incl count
    cmpl $1, count
    jne 5f
    PUTS(s_wait)
    mov $0x600, %dx
4:  in %dx, %ax
    test $0x100, %ax
    jz 4b
    mov $0x100, %ax
    out %ax, %dx
5:  ret

rtc_irq:
    push %eax
    push %edx
    push %esi
    call first
    CMOS_WRITE(0x0b, 0x02)              /* periodic interrupt off */
    CMOS_READ(0x0c)
    jmp eoi
kbd_irq:
    push %eax
    push %edx
    push %esi
    call first
    in $0x60, %al
    jmp eoi
ata_irq:
    push %eax
    push %edx
    push %esi
    call first
    mov $0x1f7, %dx
    in %dx, %al
eoi:
    movl $0, LAPIC + 0xb0
    pop %esi
    pop %edx
    pop %eax
    IRET_STI

MB_HELPERS
MB_CMDLINE_END
    .section .rodata
s_wait:  .asciz "irq: waiting for the power button\n"
s_count: .asciz "interrupts: "
s_nl:    .asciz "\n"
    .data
    .align 8
IDTR
count: .long 0
mode_rtc: .byte 0
mode_kbd: .byte 0
mode_ata: .byte 0
    .bss
    .align 8
idt: .skip 256 * 8
    .section .note.GNU-stack, "", @progbits
