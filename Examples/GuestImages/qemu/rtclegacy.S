/* The RTC's interrupt while the HPET holds IRQ 8, as QEMU's pc wires them (the RTC's
 * output reaches IRQ 8 through the HPET, which LegacyReplacement gives to timer 1):
 *   1. LegacyReplacement on, the RTC's periodic interrupt at 64 Hz, I/O APIC pin 8
 *      unmasked (vector 0x58), for 250 ms of HPET time: IRQ 8s counted (QEMU: none).
 *   2. Pin 8 masked, the RTC's periodic interrupt on for 100 ms (the RTC raises its
 *      output once and waits for register C to be read), unmasked for 50 ms: IRQ 8s
 *      counted (none); then LegacyReplacement off and 250 ms: IRQ 8s counted (QEMU drives
 *      IRQ 8 at the RTC's level as the mode ends: the waiting interrupt comes, the
 *      handler reads C, and the periodic interrupts go on).
 *   3. LegacyReplacement on again, the periodic interrupt raised and waiting, then
 *      disabled in register B before register C is read; the mode ends: IRQ 8s counted
 *      for 100 ms (none: QEMU's register B write lowers the line).
 * Each count is printed in hex on a line of its own; ends with debug-exit 0x19. With a
 * command line ending in "snap", a mode for a snapshot (`snapshot_mode`) instead. Timer 2
 * (one-shot, pin 2, vector 0x42) measures the phases; the PIT, whose IRQ 0 reaches pin
 * 2 too, is made quiet first. Interrupts are taken in `sti; hlt` only (IRET_CLI). */
#include "mb.h"
#define HPET 0xfed00000
#define CFG 0x010
#define COUNTER 0x0f0
#define T_CFG(n) (0x100 + 0x20 * (n))
#define T_CMP(n) (0x108 + 0x20 * (n))
#define TIMER2_IN(ticks) mov HPET + COUNTER, %eax; add $(ticks), %eax; mov %eax, HPET + T_CMP(2); \
    movl $0, HPET + T_CMP(2) + 4; movl $(2 << 9 | 0x4), HPET + T_CFG(2)
#define CMOS_WRITE(reg, value) mov $(reg), %al; out %al, $0x70; mov $(value), %al; out %al, $0x71
#define CMOS_READ(reg) mov $(reg), %al; out %al, $0x70; in $0x71, %al
#define WAIT_DONE 1: sti; hlt; cmpl $0, done; je 1b
KERNEL_ENTRY
    mov %ebx, %esi
    call cmdline_end
    CMDLINE_FLAG(0x70616e73, snap)  /* "snap": the snapshot mode below */
    IDT_GATE(0x58, rtc_irq)
    IDT_GATE(0x42, pin2_irq)
    lidt idtr
    PIT_QUIET                       /* every I/O APIC pin still masked */
    IOAPIC_ROUTE(2, 0x42)
    IOAPIC_ROUTE(8, 0x58)
    cmpb $0, snap
    jne snapshot_mode
    movl $3, HPET + CFG             /* ENABLE | LEG_RT */
    CMOS_WRITE(0x0a, 0x2a)
    CMOS_WRITE(0x0b, 0x42)
    CMOS_READ(0x0c)
    movl $0, count
    movl $0, done
    TIMER2_IN(25000000)
    WAIT_DONE
    PRINT(s_p1, count)
    PUTS(s_nl)
    CMOS_WRITE(0x0b, 0x02)
    CMOS_READ(0x0c)
    movl $0x20, IOAPIC
    movl $(0x10000 | 0x58), IOAPIC + 0x10   /* pin 8 masked */
    CMOS_WRITE(0x0b, 0x42)
    CMOS_READ(0x0c)
    movl $0, count
    movl $0, done
    TIMER2_IN(10000000)
    WAIT_DONE
    movl $0x20, IOAPIC
    movl $0x58, IOAPIC + 0x10               /* unmasked */
    movl $0, done
    TIMER2_IN(5000000)
    WAIT_DONE
    PRINT(s_p2a, count)
    PUTS(s_nl)
    movl $1, HPET + CFG             /* legacy off */
    movl $0, count
    movl $0, done
    TIMER2_IN(25000000)
    WAIT_DONE
    PRINT(s_p2b, count)
    PUTS(s_nl)
    /* 3. LegacyReplacement on again with the periodic interrupt on: the RTC raises its
     * output and waits; register B then disables the interrupt, C unread; the mode
     * ends: no IRQ 8 (QEMU's register B write lowers the line when no enabled flag is
     * set). */
    movl $3, HPET + CFG
    movl $0, done
    TIMER2_IN(10000000)
    WAIT_DONE
    CMOS_WRITE(0x0b, 0x02)
    movl $0, done
    TIMER2_IN(5000000)
    WAIT_DONE
    movl $1, HPET + CFG
    movl $0, count
    movl $0, done
    TIMER2_IN(10000000)
    WAIT_DONE
    PRINT(s_p3, count)
    PUTS(s_nl)
    DEBUG_EXIT(0x19)
/* With a command line ending in "snap": LegacyReplacement on, the periodic interrupt on
 * for 100 ms (the RTC raises its output and waits), "rtc: held" printed, 2 s more (a
 * test snapshots the machine here and restores it in a new process), then as phase 2's
 * end: the IRQ 8s while the mode held it, and in 250 ms once it let go. */
snapshot_mode:
    movl $3, HPET + CFG
    CMOS_WRITE(0x0a, 0x2a)
    CMOS_WRITE(0x0b, 0x42)
    CMOS_READ(0x0c)
    movl $0, count
    movl $0, done
    TIMER2_IN(10000000)
    WAIT_DONE
    PUTS(s_held)
    movl $0, done
    TIMER2_IN(200000000)
    WAIT_DONE
    PRINT(s_p1, count)
    PUTS(s_nl)
    movl $1, HPET + CFG
    movl $0, count
    movl $0, done
    TIMER2_IN(25000000)
    WAIT_DONE
    PRINT(s_p2b, count)
    PUTS(s_nl)
    DEBUG_EXIT(0x19)
DEAD_END

rtc_irq:
    push %eax
    CMOS_READ(0x0c)
    incl count
    movl $0, LAPIC + 0xb0
    pop %eax
    IRET_CLI
pin2_irq:
    movl $1, done
    movl $0, HPET + T_CFG(2)
    movl $0, LAPIC + 0xb0
    IRET_CLI

MB_HELPERS
MB_CMDLINE_END

    .section .rodata
s_p1:  .asciz "rtc: IRQ 8s while LegacyReplacement holds it: "
s_p2a: .asciz "rtc: IRQ 8s after an interrupt raised while pin 8 was masked: "
s_p2b: .asciz "rtc: IRQ 8s once LegacyReplacement let it go: "
s_p3:  .asciz "rtc: IRQ 8s after register B disabled the interrupt LegacyReplacement held back: "
s_held: .asciz "rtc: held\n"
s_nl:  .asciz "\n"
    .data
    .align 8
IDTR
count: .long 0
done: .long 0
snap: .byte 0
    .bss
    .align 8
idt: .skip 256 * 8
    .section .note.GNU-stack, "", @progbits
