/* The i8042's interrupts, as a QEMU test kernel uses them: IRQ 1 -> vector 0x51 and
 * IRQ 12 -> vector 0x5c through the IOAPIC (edge, fixed, APIC 0; the PICs masked), with
 * the configuration set to 0x03 first (both interrupts, no translation; SeaBIOS left
 * 0x61, which has the mouse's off). The
 * keyboard's identify command (0xf2) queues three bytes (0xfa, 0xab, 0x83): each is an
 * IRQ 1 whose handler reads port 0x60. Command 0xd3 puts a byte in the mouse's output
 * buffer: an IRQ 12. Then keyboard interrupts are switched off (configuration 0x02) and
 * an echo (0xee) is polled on status bit 0; a short `sti` window after it must bring no
 * fourth IRQ 1. Prints each phase; ends with debug-exit 0x1b. Interrupts are taken in
 * `sti; hlt` only, and the handlers return with them off (IRET_CLI in mb.h). */
#include "mb.h"
KERNEL_ENTRY
    IDT_GATE(0x51, kbd_irq)
    IDT_GATE(0x5c, aux_irq)
    lidt idtr
    IOAPIC_ROUTE(1, 0x51)
    IOAPIC_ROUTE(12, 0x5c)
    mov $0x60, %al                  /* configuration: keyboard and mouse interrupts */
    out %al, $0x64
    mov $0x03, %al
    out %al, $0x60

    mov $0xf2, %al                  /* keyboard: identify */
    out %al, $0x60
1:  sti
    hlt
    cmpl $3, kcount
    jb 1b
    PUTS(s_kbd)
    mov kbytes, %eax
    call puthex
    PUTS(s_nl)

    mov $0xd3, %al                  /* write the mouse's output buffer */
    out %al, $0x64
    mov $0x5a, %al
    out %al, $0x60
2:  sti
    hlt
    cmpl $1, acount
    jb 2b
    PUTS(s_aux)
    mov abytes, %eax
    call puthex
    PUTS(s_nl)

    mov $0x60, %al                  /* configuration: keyboard interrupt off */
    out %al, $0x64
    mov $0x02, %al
    out %al, $0x60
    mov $0xee, %al                  /* keyboard: echo */
    out %al, $0x60
    WAIT_KEY
    movzbl %al, %eax
    push %eax
    PUTS(s_poll)
    pop %eax
    call puthex
    PUTS(s_nl)
    sti                             /* a pending IRQ 1 would be taken here */
    nop
    nop
    cli
    PUTS(s_count)
    mov kcount, %eax
    call puthex
    PUTS(s_nl)
    DEBUG_EXIT(0x1b)
DEAD_END

kbd_irq:
    push %eax
    in $0x60, %al
    shll $8, kbytes
    mov %al, kbytes
    incl kcount
    movl $0, LAPIC + 0xb0           /* EOI */
    pop %eax
    IRET_CLI

aux_irq:
    push %eax
    in $0x60, %al
    shll $8, abytes
    mov %al, abytes
    incl acount
    movl $0, LAPIC + 0xb0
    pop %eax
    IRET_CLI

MB_HELPERS

    .section .rodata
s_kbd:   .asciz "irq 1, identify: "
s_aux:   .asciz "irq 12, mouse byte: "
s_poll:  .asciz "irq 1 off, polled echo: "
s_count: .asciz "irq 1 count: "
s_nl:    .asciz "\n"
    .data
    .align 8
IDTR
kcount: .long 0
kbytes: .long 0
acount: .long 0
abytes: .long 0
    .bss
    .align 8
idt: .skip 256 * 8
    .section .note.GNU-stack, "", @progbits
