/* The HPET as a kernel written for QEMU's `pc` uses it, at 0xfed00000 (where the ACPI
 * HPET table puts it; acpi.elf reads the table), with 32-bit accesses. Prints, a line
 * each: the capabilities and the period; timer 0's configuration and the routes it
 * offers; the counter halted at 0, then running; a one-shot edge interrupt from timer 0
 * routed to I/O APIC pin 2 (vector 0x42), the counter past the comparator when it
 * comes; the PIT's interrupts on IRQ 0, which reaches pin 2 too (QEMU's KVM routing, the
 * MADT's override), stopping while LegacyReplacement holds IRQ 0 (only timer 2's while
 * it counts 5 ms); five periodic interrupts from timer 0 in 32-bit mode with SET_VAL,
 * in LegacyReplacement mode, on IRQ 0 and so pin 2, and the comparator moved on by the
 * periods; the PIT's interrupts again once LegacyReplacement lets IRQ 0 go (then the PIT
 * made quiet); a level-triggered one-shot from timer 2 on pin 2 whose status bit is set
 * until written back; the counter halted (two reads agree) and written while halted.
 * The PIT, which SeaBIOS leaves ticking at 18.2 Hz, is made quiet first (PIT_QUIET,
 * pin 2 masked meanwhile). Interrupts are taken in `sti; hlt` only
 * (IRET_CLI); a wait for an HPET timer ends at an interrupt taken with the counter past
 * its comparator. Ends with debug-exit 0x23.
 * With a command line ending in "slow" the periodic interrupts go on until the ACPI
 * power button (PM1a status bit 8, polled), so a test can snapshot the machine in that
 * phase whatever the timing, and the five are counted after it. */
#include "mb.h"
#define HPET 0xfed00000
#define CAP 0x000
#define CFG 0x010
#define ISR 0x020
#define COUNTER 0x0f0
#define T_CFG(n) (0x100 + 0x20 * (n))
#define T_CMP(n) (0x108 + 0x20 * (n))
/* TIMER2_IN(ticks): timer 2, one-shot, edge, on pin 2, `ticks` from now, the comparator
 * kept in t2cmp (clobbers eax). */
#define TIMER2_IN(ticks) mov HPET + COUNTER, %eax; add $(ticks), %eax; mov %eax, t2cmp; \
    mov %eax, HPET + T_CMP(2); movl $0, HPET + T_CMP(2) + 4; movl $(2 << 9 | 0x4), HPET + T_CFG(2)
/* WAIT(n, counter): `sti; hlt` until `counter` (pin2s) reaches n, a constant or memory
 * (each handler returns with IF clear, so each pass takes one interrupt). */
#define WAIT(n, counter) mov n, %eax; 1: sti; hlt; cmp %eax, counter; jb 1b
/* WAIT_PAST(cmp): `sti; hlt` until an interrupt on pin 2 comes with the counter at or
 * past `cmp` (memory): the HPET timer compared with it has fired (clobbers eax). */
#define WAIT_PAST(cmp) 1: sti; hlt; mov seen_counter, %eax; sub cmp, %eax; js 1b
KERNEL_ENTRY
    mov %ebx, %esi
    call cmdline_end
    CMDLINE_FLAG(0x776f6c73, slow)  /* "slow": periodic until the power button */
    IDT_GATE(0x42, pin2_irq)
    lidt idtr
    PIT_QUIET                       /* every I/O APIC pin still masked */

    PRINT(s_cap, HPET + CAP)
    PRINT(s_period, HPET + CAP + 4)
    PUTS(s_nl)
    PRINT(s_t0, HPET + T_CFG(0))
    PRINT(s_routes, HPET + T_CFG(0) + 4)
    PUTS(s_nl)
    PRINT(s_halted, HPET + COUNTER)
    PUTS(s_nl)
    movl $1, HPET + CFG             /* ENABLE_CNF: the counter runs */
    mov HPET + COUNTER, %ebx
    mov $10000, %ecx
2:  cmp HPET + COUNTER, %ebx
    jne 3f
    loop 2b
    PUTS(s_stuck)
    jmp dead
3:  PUTS(s_runs)

    /* One-shot, edge, 64-bit: comparator first (both halves), then the timer on. */
    IOAPIC_ROUTE(2, 0x42)
    mov HPET + COUNTER, %eax
    add $100000, %eax               /* 1 ms */
    mov %eax, deadline
    mov %eax, HPET + T_CMP(0)
    movl $0, HPET + T_CMP(0) + 4
    movl $(2 << 9 | 0x4), HPET + T_CFG(0)   /* route pin 2, interrupt enabled */
    WAIT($1, pin2s)
    PUTS(s_oneshot)
    mov seen_counter, %eax
    sub deadline, %eax
    shr $31, %eax
    xor $1, %eax                    /* 1: the counter had reached the comparator */
    call puthex
    PUTS(s_nl)
    movl $0, HPET + T_CFG(0)

    /* The PIT on IRQ 0, so pin 2 (channel 0, mode 2, ~1 kHz) until LegacyReplacement
     * takes IRQ 0 over: only timer 2's interrupt on pin 2 while timer 2 counts 5 ms. */
    movl $0, pin2s
    PIT_PERIODIC(1193)
    WAIT($3, pin2s)                 /* the PIT runs */
    movl $3, HPET + CFG             /* ENABLE_CNF | LEG_RT_CNF */
    /* What the PIT left behind goes, pin 2 masked: an interrupt in the local APIC, and
     * the ticks KVM's PIT owes a slow guest (it reinjects one at each EOI of pin 2, so
     * after timer 2's too): mode 5 waits for its injecting thread, the unmask forgets
     * them. Mode 2 again for when LegacyReplacement lets IRQ 0 go: while it holds it, a
     * load starts no timer. */
    movl $0x14, IOAPIC
    movl $0x10042, IOAPIC + 0x10
    LAPIC_DRAIN(0x42)
    PIT_MODE5
    PIT_PERIODIC(1193)
    IOAPIC_ROUTE(2, 0x42)
    movl $0, pin2s
    TIMER2_IN(500000)
    WAIT_PAST(t2cmp)
    movl $0, HPET + T_CFG(2)
    PRINT(s_pit_held, pin2s)
    PUTS(s_nl)

    /* Periodic, 32-bit, LegacyReplacement: timer 0 on IRQ 0, set up as Linux does it,
     * with the counter halted, then started. */
    movl $2, HPET + CFG             /* LEG_RT_CNF, halted */
    movl $0, pin2s
    movl $(0x100 | 0x40 | 0x8 | 0x4), HPET + T_CFG(0)   /* 32-bit, SET_VAL, periodic, enabled */
    mov HPET + COUNTER, %eax
    add $50000, %eax                /* first in 0.5 ms */
    mov %eax, deadline
    mov %eax, HPET + T_CMP(0)       /* the comparator and the period (SET_VAL) */
    movl $50000, HPET + T_CMP(0)    /* the period alone: every 0.5 ms */
    movl $3, HPET + CFG             /* ENABLE_CNF | LEG_RT_CNF */
    cmpb $0, slow
    je 6f
7:  sti                             /* "slow": until the power button, then five more */
    hlt
    mov $0x600, %dx
    in %dx, %ax
    test $0x100, %ax
    jz 7b
    out %ax, %dx                    /* its status bit cleared */
    mov pin2s, %eax
    mov %eax, before
    add %eax, periodic_count
    call read_counter
    mov %eax, button_lo
    mov %edx, button_hi
6:  WAIT(periodic_count, pin2s)
    movl $0x100, HPET + T_CFG(0)    /* off */
    cmpb $0, slow
    je 8f
    /* The five came within 2^31 ticks (21 s) of the button: a restored 32-bit timer whose
     * comparator the counter had passed waited for the low half to wrap (43 s). */
    call read_counter
    sub button_lo, %eax
    sbb button_hi, %edx
    or %edx, %edx
    setz %dl
    cmp $0x80000000, %eax
    setb %al
    and %dl, %al
    movzbl %al, %eax
    mov %eax, prompt
8:  mov before, %eax
    sub %eax, pin2s
    PRINT(s_periodic, pin2s)
    PUTS(s_moved)
    mov HPET + T_CMP(0), %eax
    sub deadline, %eax
    xor %edx, %edx
    mov $50000, %ecx
    div %ecx                        /* periods the comparator moved on; the rest 0 */
    cmp $4, %eax
    setae %al
    test %edx, %edx
    sete %dl
    and %dl, %al
    movzbl %al, %eax
    call puthex
    PUTS(s_nl)
    movl $1, HPET + CFG             /* LegacyReplacement off: the PIT's again */
    TIMER2_IN(50000)                /* (a last timer 0 interrupt comes in this wait) */
    WAIT_PAST(t2cmp)
    movl $0, HPET + T_CFG(2)
    movl $0, pin2s                  /* the HPET's timers all off: the PIT's alone */
    WAIT($1, pin2s)
    PRINT(s_pit_back, pin2s)
    PUTS(s_nl)
    movl $0x14, IOAPIC              /* pin 2 masked while the PIT is made quiet */
    movl $0x10042, IOAPIC + 0x10
    LAPIC_DRAIN(0x42)               /* a PIT interrupt already in the local APIC */
    PIT_QUIET

    /* One-shot, level: timer 2 on pin 2; the status bit holds until written back. */
    IOAPIC_ROUTE(2, 0x42)
    mov HPET + COUNTER, %eax
    add $20000, %eax
    mov %eax, t2cmp
    mov %eax, HPET + T_CMP(2)
    movl $0, HPET + T_CMP(2) + 4
    movl $(2 << 9 | 0x4 | 0x2), HPET + T_CFG(2)   /* pin 2, enabled, level */
    WAIT_PAST(t2cmp)
    PRINT(s_level, seen_isr)
    movl $4, HPET + ISR             /* write 1 to clear */
    PRINT(s_cleared, HPET + ISR)
    PUTS(s_nl)
    movl $0, HPET + T_CFG(2)

    movl $0, HPET + CFG             /* halted */
    mov HPET + COUNTER, %ebx
    mov $100, %ecx
4:  loop 4b
    cmp HPET + COUNTER, %ebx
    jne dead
    movl $0x12345678, HPET + COUNTER
    movl $0, HPET + COUNTER + 4
    PRINT(s_written, HPET + COUNTER)
    PUTS(s_nl)
    cmpb $0, slow
    je 9f
    PRINT(s_prompt, prompt)
    PUTS(s_nl)
9:  DEBUG_EXIT(0x23)
DEAD_END

pin2_irq:
    push %eax
    mov HPET + COUNTER, %eax
    mov %eax, seen_counter
    mov HPET + ISR, %eax
    mov %eax, seen_isr
    incl pin2s
    movl $0, LAPIC + 0xb0           /* EOI */
    pop %eax
    IRET_CLI

/* The main counter, EDX:EAX (the high half read again until it holds still). */
read_counter:
    mov HPET + COUNTER + 4, %edx
    mov HPET + COUNTER, %eax
    cmp HPET + COUNTER + 4, %edx
    jne read_counter
    ret

MB_HELPERS
MB_CMDLINE_END

    .section .rodata
s_cap:      .asciz "hpet: capabilities "
s_period:   .asciz ", period (fs) "
s_t0:       .asciz "hpet: timer 0 configuration "
s_routes:   .asciz ", routes "
s_halted:   .asciz "hpet: counter before enabling "
s_stuck:    .asciz "hpet: the counter does not run\n"
s_runs:     .asciz "hpet: the counter runs\n"
s_oneshot:  .asciz "hpet: one-shot interrupt on pin 2, counter at the comparator: "
s_periodic: .asciz "hpet: periodic interrupts on IRQ 0 (pin 2): "
s_moved:    .asciz ", comparator moved on by whole periods: "
s_pit_held: .asciz "hpet: interrupts on pin 2 while LegacyReplacement holds IRQ 0 and timer 2 counts: "
s_pit_back: .asciz "hpet: the PIT's after it lets IRQ 0 go: "
s_level:    .asciz "hpet: level interrupt, status "
s_cleared:  .asciz ", after writing it back "
s_written:  .asciz "hpet: halted, counter written "
s_prompt:   .asciz "hpet: the five periodic interrupts after the power button came at once: "
s_nl:       .asciz "\n"
    .data
    .align 8
IDTR
pin2s: .long 0
t2cmp: .long 0
deadline: .long 0
periodic_count: .long 5
before: .long 0                     /* "slow": interrupts before the power button */
button_lo: .long 0                  /* "slow": the counter at the button */
button_hi: .long 0
prompt: .long 0                     /* "slow": 1 when the five came within 2^31 ticks */
slow: .byte 0
seen_counter: .long 0
seen_isr: .long 0
    .bss
    .align 8
idt: .skip 256 * 8
    .section .note.GNU-stack, "", @progbits
