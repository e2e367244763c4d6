/* LPT1 probed and printed to as a printer driver does, written for QEMU's `pc`, whose
 * parallel port at 0x378 has no printer behind it (the null backend under -nographic).
 * Prints, a line each: the data, status and control registers as found; the data latch
 * after writing 0x55; three bytes printed with the strobe handshake, each waited for as
 * "not busy" and each strobe's fall answered on IRQ 7 (through the I/O APIC, vector
 * 0x57, its handler reading the status, which lowers the line): the count of bytes and
 * interrupts and the status after; the status after INIT is pulled low. Then debug-exit
 * 0x25. Every port it touches is a device's (`--strict-io`). */
#include "mb.h"
KERNEL_ENTRY
    IDT_GATE(0x57, lpt_irq)
    IOAPIC_ROUTE(7, 0x57)
    lidt idtr
    PUTS(s_regs)
    mov $0x378, %dx
    call print_port
    PUTS(s_status)
    mov $0x379, %dx
    call print_port
    PUTS(s_control)
    mov $0x37a, %dx
    call print_port
    PUTS(s_nl)

    mov $0x55, %al
    mov $0x378, %dx
    out %al, %dx
    PUTS(s_latch)
    mov $0x378, %dx
    call print_port
    PUTS(s_nl)

    mov $text, %esi
1:  lodsb
    test %al, %al
    jz 3f
    mov %al, %bl
2:  mov $0x379, %dx                 /* until not busy */
    in %dx, %al
    test $0x80, %al
    jz 2b
    mov %bl, %al
    mov $0x378, %dx
    out %al, %dx
    mov $0x1d, %al                  /* IRQ enable, select, init, strobe */
    mov $0x37a, %dx
    out %al, %dx
    mov $0x1c, %al                  /* the strobe's fall: IRQ 7 */
    out %al, %dx
    push %esi
    call wait_irq
    pop %esi
    incl printed
    jmp 1b
3:  mov $0x379, %dx                 /* the last byte taken */
    in %dx, %al
    test $0x80, %al
    jz 3b
    PUTS(s_printed)
    mov printed, %eax
    call puthex2
    PUTS(s_irqs)
    mov irqs, %eax
    call puthex2
    PUTS(s_status)
    mov $0x379, %dx
    call print_port
    PUTS(s_nl)

    mov $0x08, %al                  /* INIT low */
    mov $0x37a, %dx
    out %al, %dx
    PUTS(s_init)
    mov $0x379, %dx
    call print_port
    PUTS(s_nl)
    DEBUG_EXIT(0x25)
DEAD_END

MB_WAIT_IRQ

/* IRQ 7: the status read lowers the line; `got` set, counted. */
lpt_irq:
    push %eax
    push %edx
    mov $0x379, %dx
    in %dx, %al
    incl irqs
    movb $1, got
    movl $0, LAPIC + 0xb0           /* EOI */
    pop %edx
    pop %eax
    IRET_CLI

MB_PRINT_PORT

MB_HELPERS

    .section .rodata
text:      .asciz "hi\n"
s_regs:    .asciz "registers: data "
s_status:  .asciz " status "
s_control: .asciz " control "
s_latch:   .asciz "latch "
s_printed: .asciz "printed "
s_irqs:    .asciz " bytes, interrupts "
s_init:    .asciz "init: status "
s_nl:      .asciz "\n"
    .data
    .align 8
IDTR
got:     .byte 0
    .align 4
printed: .long 0
irqs:    .long 0
    .bss
    .align 8
idt: .skip 256 * 8
    .section .note.GNU-stack, "", @progbits
