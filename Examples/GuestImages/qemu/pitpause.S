/* The PIT's periodic interrupts across a pause of the VM, as a guest counts them: PIT
 * channel 0 in mode 2 at ~100 Hz on IRQ 0 (I/O APIC pin 2, vector 0x50), timed by the
 * HPET's main counter. Prints "pit: ticking" once three ticks came, then takes ticks
 * until the keyboard has a byte (the test pauses the VM, types a key and resumes it),
 * counts the ticks in the 0.1 s after that, prints "pit: ticks in the 0.1 s after the
 * key: N" (N in hex) and ends with debug-exit 0x23. About 10 ticks come in 0.1 s; the
 * ticks a pause held back, delivered after it in a burst, are a hundred a second of
 * pause more. Interrupts are taken in `sti; hlt` only (IRET_CLI). */
#include "mb.h"
#define HPET 0xfed00000
#define COUNTER (HPET + 0xf0)
/* ONE_TICK: `sti; hlt` until the next PIT interrupt; EAX = the HPET counter after it. */
#define ONE_TICK mov ticks, %ecx; 1: sti; hlt; cmp ticks, %ecx; je 1b; mov COUNTER, %eax
KERNEL_ENTRY
    IDT_GATE(0x50, irq0)
    lidt idtr
    movl $1, HPET + 0x10            /* ENABLE_CNF: the HPET's counter is the clock */
    /* 0.1 s in counter ticks: femtoseconds over the period (CAP bits 63:32). */
    mov $0x5af3, %edx
    mov $0x107a4000, %eax
    divl HPET + 4
    mov %eax, window

    IOAPIC_ROUTE(2, 0x50)           /* IRQ 0's pin, as the MADT's override says */
    PIT_PERIODIC(11932)             /* 1193182 Hz / 11932: 100 Hz */
    ONE_TICK
    ONE_TICK
    ONE_TICK
    PUTS(s_ticking)
2:  ONE_TICK                        /* until the keyboard has a byte */
    in $0x64, %al
    test $1, %al
    jz 2b
    mov COUNTER, %eax
    add window, %eax
    mov %eax, deadline
    movl $0, ticks
3:  sti                             /* count until the counter passes the deadline */
    hlt
    mov COUNTER, %eax
    sub deadline, %eax
    js 3b
    PRINT(s_after, ticks)
    PUTS(s_nl)
    DEBUG_EXIT(0x23)
DEAD_END

irq0:
    incl ticks
    movl $0, LAPIC + 0xb0           /* EOI */
    IRET_CLI

MB_HELPERS

    .section .rodata
s_ticking:  .asciz "pit: ticking\n"
s_after:    .asciz "pit: ticks in the 0.1 s after the key: "
s_nl:       .asciz "\n"
    .data
    .align 8
IDTR
ticks: .long 0
window: .long 0
deadline: .long 0
    .bss
    .align 8
idt: .skip 256 * 8
    .section .note.GNU-stack, "", @progbits
