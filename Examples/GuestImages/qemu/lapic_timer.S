/* One vCPU, QEMU-style: enables its local APIC, programs the LAPIC timer (periodic,
 * vector 0x40) and waits in `sti; hlt` for three interrupts; then prints a line and
 * ends with `cli; hlt` (the launcher's halt rule turns that into status 0). The
 * handler returns without IRET, which this host cannot emulate in protected mode. */
#include "mb.h"
KERNEL_ENTRY
    IDT_GATE(0x40, timer)
    lidt idtr
    mov $LAPIC, %ebx
    movl $0x1ff, 0xf0(%ebx)         /* spurious vector 0xff, APIC software-enabled */
    movl $0xb, 0x3e0(%ebx)          /* divide by 1 */
    movl $0x20040, 0x320(%ebx)      /* LVT timer: periodic, vector 0x40 */
    movl $200000, 0x380(%ebx)       /* initial count */
    mov $0xff, %al                  /* both PICs masked: SeaBIOS left IRQ 0 ticking on vector 8 */
    out %al, $0x21
    out %al, $0xa1
    sti
1:  hlt
    cmpl $3, ticks
    jb 1b
    cli
    movl $0x10000, 0x320(%ebx)      /* mask the timer */
    PUTS(s_done)
DEAD_END

timer:
    incl ticks
    movl $0, LAPIC + 0xb0           /* EOI */
    IRET_STI

MB_HELPERS

    .section .rodata
s_done: .asciz "lapic timer: 3 interrupts on vector 0x40\n"
    .data
    .align 8
IDTR
ticks: .long 0
    .bss
    .align 8
idt: .skip 256 * 8
    .section .note.GNU-stack, "", @progbits
