/* What a kernel for a PC reads from the firmware's Intel MP table (MPS 1.4), as xv6 and
 * Linux without ACPI find their processors and interrupts: the BIOS data area's base
 * memory size and EBDA segment, then the BIOS area [0xf0000, 0x100000) searched for
 * "_MP_" on 16-byte boundaries, both checksums, every entry. It prints what it found
 * beside what the bootstrap processor's local APIC and the I/O APIC say of themselves
 * (ID and version registers, as xv6 compares them), starts each application processor
 * the table names by INIT/SIPI to its local APIC ID and waits for it, then routes ISA
 * IRQ 0 (the PIT) through the I/O APIC pin the table names and waits for one interrupt.
 * Every vCPU ends in `cli; hlt` (status 0); so does a run without a table, after saying
 * so. A wrong APIC ID or pin in the table hangs it (the test's --max-seconds ends it). */
#include "mb.h"
#define COUNTER 0x7000
#define FP_SIG 0x5f504d5f               /* "_MP_" */
#define CT_SIG 0x504d4350               /* "PCMP" */
KERNEL_ENTRY
    PUTS(s_bda)
    movzwl 0x413, %eax
    call puthex
    PUTS(s_ebda)
    movzwl 0x40e, %eax
    call puthex
    PUTS(s_nl)

    mov $0xf0000, %ebx
1:  cmpl $FP_SIG, (%ebx)
    je 2f
    add $16, %ebx
    cmp $0x100000, %ebx
    jb 1b
    PUTS(s_none)
    jmp dead
2:  mov %ebx, %edi
    mov $16, %ecx
    call sum
    jnz bad_sum
    PRINT(s_fp, %ebx)
    mov 4(%ebx), %ebx                   /* the configuration table */
    PRINT(s_table, %ebx)
    PUTS(s_nl)
    cmpl $CT_SIG, (%ebx)
    jne bad_sig
    mov %ebx, %edi
    movzwl 4(%ebx), %ecx
    call sum
    jnz bad_sum
    movzwl 34(%ebx), %eax
    mov %eax, count
    PRINT(s_entries, count)
    PRINT(s_lapics, 36(%ebx))
    PUTS(s_nl)

    lea 44(%ebx), %edi                  /* the entries, in type order */
    movzwl 4(%ebx), %ebp
    add %ebx, %ebp
walk:
    cmp %ebp, %edi
    jae walked
    movzbl (%edi), %eax
    test %eax, %eax
    jz processor
    cmp $2, %eax
    je ioapic
    cmp $3, %eax
    je intsrc
    cmp $4, %eax
    ja bad_type
    add $8, %edi                        /* a bus or a local interrupt */
    jmp walk
processor:
    testb $1, 3(%edi)                   /* enabled */
    jz 3f
    movzbl 1(%edi), %eax
    mov nproc, %ecx
    mov %al, apics(%ecx)
    incl nproc
    testb $2, 3(%edi)                   /* the bootstrap processor */
    jz 3f
    mov %eax, bsp
    movzbl 2(%edi), %eax
    mov %eax, bspver
3:  add $20, %edi
    jmp walk
ioapic:
    movzbl 1(%edi), %eax
    mov %eax, ioid
    movzbl 2(%edi), %eax
    mov %eax, iover
    mov 4(%edi), %eax
    mov %eax, ioaddr
    add $8, %edi
    jmp walk
intsrc:
    cmpb $0, 1(%edi)                    /* a vectored interrupt ... */
    jne 4f
    cmpb $0, 5(%edi)                    /* ... from source IRQ 0 */
    jne 4f
    movzbl 7(%edi), %eax
    mov %eax, irq0pin
4:  add $8, %edi
    jmp walk
walked:
    PRINT(s_procs, nproc)
    PRINT(s_bsp, bsp)
    PRINT(s_version, bspver)
    mov LAPIC + 0x20, %eax              /* what this processor's local APIC says */
    shr $24, %eax
    mov %eax, reg
    PRINT(s_regs, reg)
    movzbl LAPIC + 0x30, %eax
    mov %eax, reg
    PRINT(s_version, reg)
    PUTS(s_nl)
    cmpl $-1, irq0pin
    je no_irq0
    PRINT(s_ioapic, ioid)
    PRINT(s_version, iover)
    PRINT(s_at, ioaddr)
    mov ioaddr, %ebx                    /* what the I/O APIC says */
    IOAPIC_REG(%ebx, 0)
    shr $24, %eax
    and $0xf, %eax
    mov %eax, reg
    PRINT(s_regs, reg)
    IOAPIC_REG(%ebx, 1)
    movzbl %al, %eax
    mov %eax, reg
    PRINT(s_version, reg)
    PUTS(s_nl)
    PRINT(s_irq0, irq0pin)
    PUTS(s_nl)

    mov $ap_start, %esi                 /* each AP starts in real mode at 0x8000 */
    mov $0x8000, %edi
    mov $(ap_end - ap_start), %ecx
    rep movsb
    movl $0, COUNTER
    movl $0x1ff, LAPIC + 0xf0
next_ap:
    mov index, %ecx
    cmp nproc, %ecx
    jae aps_up
    incl index
    movzbl apics(%ecx), %eax
    cmp bsp, %eax
    je next_ap
    shl $24, %eax
    mov %eax, LAPIC + 0x310             /* destination: the table's APIC ID */
    movl $0x4500, LAPIC + 0x300         /* INIT */
    mov %eax, LAPIC + 0x310
    movl $0x4608, LAPIC + 0x300         /* SIPI, vector 8 */
    mov %eax, LAPIC + 0x310
    movl $0x4608, LAPIC + 0x300
    incl started
5:  pause
    movzwl COUNTER, %eax
    cmp started, %eax
    jb 5b
    mov index, %ecx
    movzbl apics - 1(%ecx), %eax
    mov %eax, apic
    PRINT(s_started, apic)
    PUTS(s_nl)
    jmp next_ap

aps_up:
    IDT_GATE(0x60, tick)
    lidt idtr
    mov $0xff, %al                      /* both PICs masked: the I/O APIC delivers */
    out %al, $0x21
    out %al, $0xa1
    movl $0x10000, LAPIC + 0x350        /* LINT0 masked */
    mov ioaddr, %ebx
    mov irq0pin, %eax
    lea 0x10(, %eax, 2), %eax
    mov %eax, (%ebx)                    /* the pin's entry: vector 0x60, edge, fixed */
    movl $0x60, 0x10(%ebx)
    inc %eax
    mov %eax, (%ebx)
    mov bsp, %ecx
    shl $24, %ecx
    mov %ecx, 0x10(%ebx)                /* to the bootstrap processor */
    PIT_PERIODIC(1193)                  /* 1 kHz */
6:  sti
    hlt
    cmpl $0, ticks
    je 6b
    cli
    mov irq0pin, %eax
    lea 0x10(, %eax, 2), %eax
    mov %eax, (%ebx)
    movl $0x10060, 0x10(%ebx)           /* the entry masked again */
    PRINT(s_tick, irq0pin)
    PUTS(s_nl)
DEAD_END

no_irq0: PUTS(s_no_irq0)
    jmp dead
bad_sum: PUTS(s_bad_sum)
    jmp dead
bad_sig: PUTS(s_bad_sig)
    jmp dead
bad_type: PUTS(s_bad_type)
    jmp dead

/* sum: ZF set when the ECX bytes at EDI sum to 0 (clobbers eax, ecx, edi). */
sum:
    xor %eax, %eax
7:  add (%edi), %al
    inc %edi
    loop 7b
    test %al, %al
    ret

/* The PIT's interrupt; returns by IRET_STI (mb.h: no 32-bit IRET here). */
tick:
    incl ticks
    movl $0, LAPIC + 0xb0               /* EOI */
    IRET_STI

MB_HELPERS

    .section .rodata
s_bda: .asciz "bda: base memory KiB "
s_ebda: .asciz ", EBDA segment "
s_none: .asciz "mp: no floating pointer in [0xf0000, 0x100000)\n"
s_fp: .asciz "mp: floating pointer at "
s_table: .asciz ", table at "
s_entries: .asciz "mp: entries "
s_lapics: .asciz ", local APICs at "
s_procs: .asciz "mp: processors "
s_bsp: .asciz ", bootstrap APIC ID "
s_ioapic: .asciz "mp: I/O APIC ID "
s_at: .asciz " at "
s_irq0: .asciz "mp: ISA IRQ 0 on I/O APIC pin "
s_version: .asciz " version "
s_regs: .asciz "; its registers: ID "
s_started: .asciz "mp: started APIC ID "
s_tick: .asciz "timer: ISA IRQ 0 arrived through pin "
s_no_irq0: .asciz "mp: no entry for ISA IRQ 0\n"
s_bad_sum: .asciz "mp: bad checksum\n"
s_bad_sig: .asciz "mp: no PCMP signature\n"
s_bad_type: .asciz "mp: unknown entry type\n"
s_nl: .asciz "\n"
    .code16
ap_start:
    xor %ax, %ax
    mov %ax, %ds
    lock incw COUNTER
8:  cli
    hlt
    jmp 8b
ap_end:
    .data
    .align 8
IDTR
irq0pin: .long -1
nproc: .long 0
bsp: .long 0
ioid: .long 0
ioaddr: .long 0
index: .long 0
started: .long 0
ticks: .long 0
count: .long 0
bspver: .long 0
iover: .long 0
reg: .long 0
apic: .long 0
    .bss
    .align 8
idt: .skip 256 * 8
apics: .skip 256
    .section .note.GNU-stack, "", @progbits
