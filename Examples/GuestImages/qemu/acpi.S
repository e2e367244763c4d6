/* What a kernel for a PC reads from the firmware's ACPI tables, as QEMU's SeaBIOS leaves
 * them: the RSDP searched for in the EBDA's first KiB and in [0xe0000, 0x100000) on
 * 16-byte boundaries, its checksum, then every table the RSDT names, each checksummed.
 * From the MADT: the processors (compared with fw_cfg's CPU count and with this
 * processor's local APIC ID register), the I/O APIC (compared with its ID register),
 * the interrupt source overrides and local APIC NMIs. From the HPET table: the event
 * timer block ID, the registers' address and its address space. From the FADT: the PM1a control
 * port, the SCI and the DSDT, in which it finds \_S5_'s sleep type as kernels written
 * for QEMU do (the bytes after "_S5_"), and each Device (its name, and its _HID as an
 * EISA ID's DWord or a string), as kernels that look for one device find it. Then it reads the PM1a control register (SCI_EN
 * set: ACPI mode, which a FADT without an SMI command port promises) and switches the
 * machine off as they do: SLP_TYPa | SLP_EN to that port. A line after that means it
 * did not. Before that it times 0.1 s (357954 ticks) by the FADT's PM timer as kernels
 * calibrate by it: every read within 24 bits (TMR_VAL_EXT clear), none behind the one
 * before (modulo 2^24), and says in how many reads.
 * With a command line ending in "button" it first waits for the power button, as an
 * ACPI kernel does for a shutdown request: the FADT must make it a fixed feature
 * (PWR_BUTTON clear); the SCI (the FADT's IRQ, level, active high, as the MADT's
 * override says) goes through the I/O APIC to vector 0x29; PWRBTN_EN (bit 8 of PM1a's
 * enable register, the event block + 2) on; then `sti; hlt`. The SCI's handler reads
 * PM1a's status, clears what it read by writing it back, reads it again and switches
 * off. It prints the PM timer as it starts to wait and in the handler. */
#include "mb.h"
#define RSD_LO 0x20445352               /* "RSD " */
#define PTR_HI 0x20525450               /* "PTR " */
KERNEL_ENTRY
    mov %ebx, mbinfo
    movzwl 0x40e, %ebx                  /* the EBDA's first KiB, then the BIOS area */
    shl $4, %ebx
    lea 1024(%ebx), %ebp
    call find_rsdp
    jz 2f
    mov $0xe0000, %ebx
    mov $0x100000, %ebp
    call find_rsdp
    jz 2f
    PUTS(s_none)
    jmp dead
2:  mov %ebx, %edi
    mov $20, %ecx
    call sum
    jnz bad_sum
    mov %ebx, table
    PRINT(s_rsdp, table)
    movzbl 15(%ebx), %eax
    mov %eax, value
    PRINT(s_revision, value)
    mov 16(%ebx), %ebx                  /* the RSDT */
    mov %ebx, table
    PRINT(s_rsdt, table)
    PUTS(s_nl)
    call check_table
    mov 4(%ebx), %ebp
    add %ebx, %ebp                      /* its end */
    lea 36(%ebx), %edi                  /* its entries: 32-bit addresses */
next_table:
    cmp %ebp, %edi
    jae tables_done
    push %edi
    push %ebp
    mov (%edi), %ebx
    call check_table
    cmpl $0x50434146, (%ebx)            /* "FACP" */
    jne 3f
    call fadt
3:  cmpl $0x43495041, (%ebx)            /* "APIC" */
    jne 4f
    call madt
4:  cmpl $0x54455048, (%ebx)            /* "HPET" */
    jne 5f
    PRINT(s_hpet, 36(%ebx))             /* the event timer block ID */
    PRINT(s_hpet_at, 44(%ebx))          /* the base address's low half */
    movzbl 40(%ebx), %eax
    mov %eax, value
    PRINT(s_hpet_space, value)          /* its address space: 0, memory */
    PUTS(s_nl)
5:  pop %ebp
    pop %edi
    add $4, %edi
    jmp next_table

tables_done:
    mov dsdt, %ebx
    test %ebx, %ebx
    jz no_fadt
    call check_table
    mov 4(%ebx), %ecx                   /* "_S5_" in the AML, as kernels for QEMU find it */
    sub $4, %ecx
    mov %ebx, %edi
5:  cmpl $0x5f35535f, (%edi)            /* "_S5_" */
    je 6f
    inc %edi
    loop 5b
    PUTS(s_no_s5)
    jmp dead
6:  cmpb $0x12, 4(%edi)                 /* a package */
    jne bad_s5
    movzbl 5(%edi), %eax                /* PkgLength: (lead byte >> 6) more bytes */
    shr $6, %eax
    lea 7(%edi, %eax), %edi             /* past PkgLength and NumElements */
    movzbl (%edi), %eax
    cmp $0x0a, %eax                     /* BytePrefix, or Zero / One */
    jne 7f
    movzbl 1(%edi), %eax
7:  mov %eax, slptyp
    PRINT(s_s5, slptyp)
    PUTS(s_nl)
    call dsdt_devices
    mov pm1a, %edx                      /* SCI_EN (bit 0): in ACPI mode already */
    in (%dx), %ax
    movzwl %ax, %eax
    mov %eax, value
    PRINT(s_pm1cnt, value)
    PUTS(s_nl)
    call time_tenth
    call wants_button
    jz button
switch_off:
    mov slptyp, %eax                    /* switch off: SLP_TYPa | SLP_EN */
    shl $10, %eax
    or $0x2000, %eax
    mov pm1a, %edx
    out %ax, %dx
    PUTS(s_still)
DEAD_END

button:
    testl $0x10, fflags                 /* PWR_BUTTON set: no fixed-feature button */
    jnz no_button
    IDT_GATE(0x29, sci)
    lidt idtr
    mov $0xff, %al                      /* the PICs masked, the local APIC on */
    out %al, $0x21
    out %al, $0xa1
    movl $0x1ff, LAPIC + 0xf0
    mov sciirq, %eax                    /* the SCI's redirection entry: level, high, 0x29 */
    lea 0x10(, %eax, 2), %eax
    mov %eax, IOAPIC
    movl $0x8029, IOAPIC + 0x10
    inc %eax
    mov %eax, IOAPIC
    movl $0, IOAPIC + 0x10
    mov pm1evt, %edx                    /* PWRBTN_EN */
    add $2, %edx
    mov $0x100, %ax
    out %ax, %dx
    mov pmtmr, %edx
    in (%dx), %eax
    mov %eax, value
    PRINT(s_waiting, value)
    PUTS(s_nl)
1:  sti
    hlt
    jmp 1b

/* sci: the SCI's handler; never returns (the machine switches off). */
sci:
    mov pm1evt, %edx
    in (%dx), %ax
    out %ax, %dx                        /* write 1 to clear what was set */
    movzwl %ax, %eax
    mov %eax, value
    mov pm1evt, %edx
    in (%dx), %ax
    movzwl %ax, %eax
    mov %eax, value2
    mov pmtmr, %edx
    in (%dx), %eax
    mov %eax, tlast
    movl $0, LAPIC + 0xb0               /* EOI */
    PRINT(s_status, value)
    PRINT(s_cleared, value2)
    PRINT(s_timer_now, tlast)
    PUTS(s_nl)
    jmp switch_off

/* time_tenth: 0.1 s by the PM timer (its port from the FADT), counting reads. */
time_tenth:
    mov pmtmr, %edx
    test %edx, %edx
    jz no_timer
    in (%dx), %eax
    mov %eax, tstart
    mov %eax, tlast
    movl $0, reads
1:  in (%dx), %eax
    incl reads
    test $0xff000000, %eax
    jnz timer_wide
    mov %eax, %ecx
    sub tlast, %ecx
    and $0xffffff, %ecx
    cmp $0x800000, %ecx
    jae timer_back
    mov %eax, tlast
    sub tstart, %eax
    and $0xffffff, %eax
    cmp $357954, %eax
    jb 1b
    PRINT(s_tenth, reads)
    PUTS(s_reads)
    ret
timer_wide:
    mov %eax, value
    PRINT(s_wide, value)
    PUTS(s_nl)
    jmp dead
timer_back:
    mov %eax, value
    PRINT(s_back, tlast)
    PRINT(s_to, value)
    PUTS(s_nl)
    jmp dead

/* wants_button: ZF set when the Multiboot command line ends in "button". */
wants_button:
    mov mbinfo, %esi
    call cmdline_end
    test %esi, %esi
    jz 2f
    cmpl $0x74747562, -6(%esi)          /* "butt" */
    jne 2f
    cmpw $0x6e6f, -2(%esi)              /* "on" */
    ret
2:  test %esp, %esp                     /* ZF clear */
    ret

no_button: PUTS(s_no_button)
    jmp dead
no_timer: PUTS(s_no_timer)
    jmp dead
no_fadt: PUTS(s_no_fadt)
    jmp dead
bad_s5: PUTS(s_bad_s5)
    jmp dead
bad_sum: PUTS(s_bad_sum)
    jmp dead

/* find_rsdp: ZF set and EBX at the RSDP when one lies in [EBX, EBP) (clobbers EBX). */
find_rsdp:
    cmpl $RSD_LO, (%ebx)
    jne 1f
    cmpl $PTR_HI, 4(%ebx)
    je 2f
1:  add $16, %ebx
    cmp %ebp, %ebx
    jb find_rsdp
    or $1, %ebx                         /* ZF clear: none */
2:  ret

/* check_table: prints the table at EBX (signature, address, length) and checks its sum. */
check_table:
    PUTS(s_table)
    mov %ebx, %esi
    mov $4, %ecx
    mov $0x3f8, %dx
1:  lodsb
    out %al, %dx
    loop 1b
    mov %ebx, table
    PRINT(s_at, table)
    mov 4(%ebx), %eax
    mov %eax, value
    PRINT(s_length, value)
    PUTS(s_nl)
    mov %ebx, %edi
    mov 4(%ebx), %ecx
    call sum
    jnz bad_sum
    ret

/* dsdt_devices: each DeviceOp (5B 82) in the DSDT at dsdt: its NameSeg (after its
 * PkgLength) and the value of the first Name(_HID, ...) after it. */
dsdt_devices:
    mov dsdt, %ebx
    mov 4(%ebx), %ecx
    sub $36 + 8, %ecx                   /* past the header; room for a whole NameSeg */
    lea 36(%ebx), %edi
1:  cmpw $0x825b, (%edi)
    jne 4f
    pusha
    movzbl 2(%edi), %eax                /* PkgLength: (lead byte >> 6) more bytes */
    shr $6, %eax
    lea 3(%edi, %eax), %edi             /* the NameSeg */
    PUTS(s_device)
    mov $4, %ecx
    mov $0x3f8, %dx
2:  mov (%edi), %al
    out %al, %dx
    inc %edi
    loop 2b
    mov $64, %ecx                       /* Name(_HID, ...) within the device's first bytes */
3:  cmpl $0x4449485f, 1(%edi)           /* "_HID" */
    jne 5f
    cmpb $0x08, (%edi)                  /* NameOp */
    je 6f
5:  inc %edi
    loop 3b
    PUTS(s_nohid)
    jmp 9f
6:  PUTS(s_hid)
    cmpb $0x0d, 5(%edi)                 /* a string */
    jne 7f
    lea 6(%edi), %esi
    call puts
    jmp 9f
7:  mov 6(%edi), %eax                   /* DWordConst: an EISA ID */
    call puthex
9:  PUTS(s_nl)
    popa
4:  inc %edi
    loop 1b
    ret

/* fadt: the FADT at EBX. */
fadt:
    mov 40(%ebx), %eax
    mov %eax, dsdt
    mov 64(%ebx), %eax
    mov %eax, pm1a
    mov 56(%ebx), %eax
    mov %eax, pm1evt
    mov 112(%ebx), %eax
    mov %eax, fflags
    movzwl 46(%ebx), %eax
    mov %eax, sciirq
    mov %eax, value
    mov 76(%ebx), %eax
    mov %eax, pmtmr
    PRINT(s_pm1a, pm1a)
    PRINT(s_sci, value)
    PRINT(s_dsdt, dsdt)
    PUTS(s_nl)
    movzbl 91(%ebx), %eax
    mov %eax, value
    PRINT(s_pmtmr, pmtmr)
    PRINT(s_length, value)
    PRINT(s_flags, fflags)
    PUTS(s_nl)
    ret

/* madt: the MADT at EBX; its entries from +44 to its end. */
madt:
    PRINT(s_lapics, 36(%ebx))
    PRINT(s_flags, 40(%ebx))
    PUTS(s_nl)
    lea 44(%ebx), %edi
    mov 4(%ebx), %ebp
    add %ebx, %ebp
    movl $0, value                      /* enabled processors */
1:  cmp %ebp, %edi
    jae 6f
    movzbl (%edi), %eax
    test %eax, %eax
    jnz 2f
    testb $1, 4(%edi)                   /* a processor, enabled */
    jz 5f
    incl value
    cmpl $1, value                      /* the first is this one: its APIC ID */
    jne 5f
    movzbl 3(%edi), %eax
    mov %eax, bspid
    jmp 5f
2:  cmp $1, %eax
    jne 3f
    movzbl 2(%edi), %eax                /* the I/O APIC */
    mov %eax, ioid
    mov 4(%edi), %eax
    mov %eax, ioaddr
    mov 8(%edi), %eax
    mov %eax, gsibase
    jmp 5f
3:  cmp $2, %eax
    jne 4f
    push %ebp                           /* an interrupt source override */
    push %edi
    movzbl 3(%edi), %eax
    mov %eax, value2
    PRINT(s_iso, value2)
    mov (%esp), %edi
    mov 4(%edi), %eax
    mov %eax, value2
    PRINT(s_gsi, value2)
    mov (%esp), %edi
    movzwl 8(%edi), %eax
    mov %eax, value2
    PRINT(s_flags, value2)
    PUTS(s_nl)
    pop %edi
    pop %ebp
    jmp 5f
4:  cmp $4, %eax
    jne 5f
    push %ebp                           /* a local APIC NMI */
    push %edi
    movzbl 2(%edi), %eax
    mov %eax, value2
    PRINT(s_nmi, value2)
    mov (%esp), %edi
    movzbl 5(%edi), %eax
    mov %eax, value2
    PRINT(s_lint, value2)
    PUTS(s_nl)
    pop %edi
    pop %ebp
5:  movzbl 1(%edi), %eax                /* each entry gives its length */
    test %eax, %eax
    jz 6f
    add %eax, %edi
    jmp 1b
6:  PRINT(s_procs, value)
    FWCFG_CPUS
    mov %eax, value2
    PRINT(s_fwcfg, value2)
    PUTS(s_nl)
    PRINT(s_bsp, bspid)
    mov LAPIC + 0x20, %eax
    shr $24, %eax
    mov %eax, value2
    PRINT(s_reg, value2)
    PUTS(s_nl)
    PRINT(s_ioapic, ioid)
    PRINT(s_at2, ioaddr)
    PRINT(s_gsibase, gsibase)
    mov ioaddr, %ebx
    IOAPIC_REG(%ebx, 0)                 /* its ID */
    shr $24, %eax
    and $0xf, %eax
    mov %eax, value2
    PRINT(s_reg, value2)
    PUTS(s_nl)
    ret

/* sum: ZF set when the ECX bytes at EDI sum to 0 (clobbers eax, ecx, edi). */
sum:
    xor %eax, %eax
1:  add (%edi), %al
    inc %edi
    loop 1b
    test %al, %al
    ret

MB_HELPERS
MB_CMDLINE_END

    .section .rodata
s_hpet:     .asciz "acpi: HPET: event timer block "
s_hpet_at:  .asciz ", registers at "
s_hpet_space: .asciz ", address space "
s_none: .asciz "acpi: no RSDP\n"
s_rsdp: .asciz "acpi: RSDP at "
s_revision: .asciz ", revision "
s_rsdt: .asciz ", RSDT at "
s_table: .asciz "acpi: table "
s_at: .asciz " at "
s_length: .asciz ", length "
s_pm1a: .asciz "acpi: FADT: PM1a control port "
s_sci: .asciz ", SCI IRQ "
s_dsdt: .asciz ", DSDT at "
s_lapics: .asciz "acpi: MADT: local APICs at "
s_flags: .asciz ", flags "
s_iso: .asciz "acpi: MADT: ISA IRQ "
s_gsi: .asciz " -> GSI "
s_nmi: .asciz "acpi: MADT: NMI on processor "
s_lint: .asciz ", LINT "
s_procs: .asciz "acpi: MADT: processors "
s_fwcfg: .asciz "; fw_cfg's CPU count "
s_bsp: .asciz "acpi: MADT: first processor's APIC ID "
s_reg: .asciz "; its register says "
s_ioapic: .asciz "acpi: MADT: I/O APIC ID "
s_at2: .asciz " at "
s_gsibase: .asciz ", GSI base "
s_s5: .asciz "acpi: DSDT: \\_S5_ sleep type "
s_device: .asciz "acpi: DSDT: device "
s_hid: .asciz " _HID "
s_nohid: .asciz " without _HID"
s_pm1cnt: .asciz "acpi: PM1a control reads "
s_still: .asciz "acpi: still running after SLP_EN\n"
s_no_fadt: .asciz "acpi: no FADT\n"
s_no_s5: .asciz "acpi: no _S5_ in the DSDT\n"
s_bad_s5: .asciz "acpi: _S5_ is not a package\n"
s_bad_sum: .asciz "acpi: bad checksum\n"
s_nl: .asciz "\n"
s_waiting: .asciz "acpi: waiting for the power button, PM timer "
s_timer_now: .asciz ", PM timer "
s_pmtmr: .asciz "acpi: FADT: PM timer port "
s_tenth: .asciz "acpi: PM timer: 0.1 s in "
s_reads: .asciz " reads, each within 24 bits, none behind the last\n"
s_wide: .asciz "acpi: PM timer read more than 24 bits: "
s_back: .asciz "acpi: PM timer went back from "
s_to: .asciz " to "
s_no_timer: .asciz "acpi: the FADT names no PM timer\n"
s_status: .asciz "acpi: SCI: PM1a status "
s_cleared: .asciz ", after clearing "
s_no_button: .asciz "acpi: the FADT names no fixed-feature power button\n"
    .data
IDTR
    .align 4
table: .long 0
value: .long 0
value2: .long 0
dsdt: .long 0
pm1a: .long 0
slptyp: .long 0
bspid: .long 0
ioid: .long 0
ioaddr: .long 0
gsibase: .long 0
mbinfo: .long 0
pm1evt: .long 0
fflags: .long 0
sciirq: .long 0
pmtmr: .long 0
tstart: .long 0
tlast: .long 0
reads: .long 0
    .bss
    .align 8
idt: .skip 256 * 8
    .section .note.GNU-stack, "", @progbits
