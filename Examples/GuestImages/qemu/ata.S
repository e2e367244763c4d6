/* An ATA PIO driver as a QEMU test kernel writes one (OSDev's "ATA PIO Mode"), for a
 * disk given as `-hda` (`vmm run --hda`): the primary channel, ports 0x1f0-0x1f7 and
 * 0x3f6, polled with interrupts off (nIEN), then one read taken on IRQ 14 through the
 * IOAPIC (vector 0x5e). Prints, a line each: where PCI puts the IDE controller (its
 * device and function, and its programming interface); the model and sizes IDENTIFY gives; the text
 * at the start of sectors 1 and 2 (one READ SECTORS of 2) and the task file after it;
 * sector 1 again by CHS (cylinder 0, head 0, sector 2); sector 2 by READ SECTORS EXT; the
 * status after a sector written at LBA 5 (WRITE SECTORS) and after FLUSH CACHE, the sector
 * read back; the status and
 * error of a read at the first sector past the end; the status of the absent slave, and
 * its count and LBA low after writing 0x55 and 0xaa there, as Linux's ata_devchk probes
 * (register writes reach both drives, so they read back), and the status of the
 * secondary channel's master (QEMU's empty CD-ROM drive: 0x50); the
 * status the IRQ 14 handler read, with sector 3's text. Then debug-exit 0x21. With the
 * command line ending in "pause" it reads half of sector 1, says so, and waits for a
 * byte from the keyboard before it reads the rest (a transfer in flight for a
 * snapshot). A status of 0 or 0xff before IDENTIFY means no disk: it says so and
 * ends with debug-exit 0x22. The
 * disk's sectors are expected to begin with NUL-terminated text. */
#include "mb.h"
KERNEL_ENTRY
    mov %ebx, %esi
    call cmdline_end
    test %esi, %esi
    jz 1f
    cmpl $0x65737561, -4(%esi)      /* "pause" */
    jne 1f
    movb $1, pause
    /* The controller found as drivers written for QEMU find it: the first PCI function
     * of class 01:01 (IDE) on bus 0; its programming interface says whether the primary
     * channel is at the legacy ports (bits 0 and 2 clear: compatibility mode). */
1:  mov $0x80000008, %ebx           /* bus 0, devfn 0, dword 8: class and interface */
    mov $0xffff0000, %esi
    mov $0x01010000, %edi
    call pci_find
    mov %eax, %edi
    jz 3f
    PUTS(s_nopci)
    jmp 4f
3:  PUTS(s_pci)
    mov %ebx, %eax
    shr $8, %eax
    call puthex2
    PUTS(s_progif)
    mov %edi, %eax
    shr $8, %eax
    call puthex2
    PUTS(s_nl)
4:  mov $0x02, %al                  /* nIEN: polled, no interrupts */
    mov $0x3f6, %dx
    out %al, %dx
    mov $0xa0, %al                  /* the master */
    mov $0x1f6, %dx
    out %al, %dx
    inc %dx                         /* 0 (an empty channel) or 0xff (a floating bus): no disk */
    in %dx, %al
    test %al, %al
    jz no_disk
    cmp $0xff, %al
    je no_disk
    mov $0xec, %al                  /* IDENTIFY DEVICE */
    call command
    call wait_drq
    jc failed
    call read_sector
    mov buf + 120, %eax             /* words 60-61: LBA28 sectors */
    mov %eax, sectors
    PUTS(s_model)
    mov $buf + 54, %esi             /* words 27-46, each word's first character in its high byte */
    mov $20, %ecx
    mov $0x3f8, %dx
1:  lodsw
    xchg %al, %ah
    out %al, %dx
    mov %ah, %al
    out %al, %dx
    loop 1b
    PRINT(s_sectors, sectors)
    PRINT(s_lba48, buf + 200)       /* words 100-101 */
    PUTS(s_nl)

    mov $1, %ecx                    /* READ SECTORS (LBA28): 2 from sector 1 */
    mov $2, %edi
    mov $0x20, %al
    call lba_command
    cmpb $0, pause
    je 3f
    call wait_drq                   /* half of sector 1, then a key on the i8042 */
    jc failed
    mov $buf, %edi
    mov $128, %ecx
    mov $0x1f0, %dx
    rep insw
    PUTS(s_reading)
    WAIT_KEY
    mov $buf + 256, %edi            /* and the rest */
    mov $128, %ecx
    mov $0x1f0, %dx
    rep insw
    PUTS(buf)
    PUTS(s_nl)
    jmp 4f
3:  call print_sector
4:  call print_sector
    call print_after                /* the task file names the next sector, count 0 */

    mov $0xa0, %al                  /* CHS: cylinder 0, head 0, sector 2 (= LBA 1) */
    mov $0x1f6, %dx
    out %al, %dx
    mov $0x1f2, %dx
    mov $1, %al
    out %al, %dx
    inc %dx
    mov $2, %al
    out %al, %dx
    inc %dx
    xor %al, %al
    out %al, %dx
    inc %dx
    out %al, %dx
    mov $0x20, %al
    call command
    PUTS(s_chs)
    call print_sector

    mov $2, %ecx                    /* READ SECTORS EXT (LBA48): 1 at sector 2 */
    mov $1, %edi
    mov $0x24, %al
    call lba48_command
    PUTS(s_ext)
    call print_sector

    mov $5, %ecx                    /* WRITE SECTORS: 1 at sector 5 */
    mov $1, %edi
    mov $0x30, %al
    call lba_command
    call wait_drq
    jc failed
    mov $s_written, %esi
    mov $buf, %edi
    mov $128, %ecx
    rep movsl
    mov $buf, %esi
    mov $256, %ecx
    mov $0x1f0, %dx
    rep outsw
    call wait_idle
    PUTS(s_write)
    mov $0x1f7, %dx
    call print_port
    PUTS(s_nl)
    mov $0xe7, %al                  /* FLUSH CACHE */
    call command
    call wait_idle
    PUTS(s_flush)
    mov $0x1f7, %dx
    call print_port
    PUTS(s_nl)
    mov $5, %ecx                    /* and read it back */
    mov $1, %edi
    mov $0x20, %al
    call lba_command
    PUTS(s_back)
    call print_sector

    mov sectors, %ecx               /* the first sector past the end: aborted */
    mov $1, %edi
    mov $0x20, %al
    call lba_command
    PUTS(s_past)
    mov $0x1f7, %dx
    call print_port
    PUTS(s_error)
    mov $0x1f1, %dx
    call print_port
    PUTS(s_nl)

    mov $0xb0, %al                  /* the slave, absent: its status reads 0 */
    mov $0x1f6, %dx
    out %al, %dx
    PUTS(s_slave)
    mov $0x1f7, %dx
    call print_port
    mov $0x55, %al                  /* ata_devchk's pattern */
    mov $0x1f2, %dx
    out %al, %dx
    mov $0xaa, %al
    inc %dx
    out %al, %dx
    PUTS(s_devchk)
    mov $0x1f2, %dx
    call print_port
    PUTS(s_space)
    mov $0x1f3, %dx
    call print_port
    PUTS(s_nl)
    mov $0xa0, %al                  /* the secondary channel's master: the empty CD-ROM, 0x50 */
    mov $0x176, %dx
    out %al, %dx
    PUTS(s_second)
    mov $0x177, %dx
    call print_port
    PUTS(s_nl)
    mov $0xa0, %al
    mov $0x1f6, %dx
    out %al, %dx

    IDT_GATE(0x5e, ata_irq)         /* one read on IRQ 14 */
    IOAPIC_ROUTE(14, 0x5e)
    lidt idtr
    xor %al, %al                    /* interrupts on (nIEN clear) */
    mov $0x3f6, %dx
    out %al, %dx
    mov $3, %ecx
    mov $1, %edi
    mov $0x20, %al
    call lba_command
2:  sti
    hlt
    cmpb $0, got
    je 2b
    PUTS(s_irq)
    movzbl irq_status, %eax
    call puthex2
    PUTS(s_space)
    call print_sector
    DEBUG_EXIT(0x21)
no_disk:
    PUTS(s_none)
    mov $0x1f7, %dx
    call print_port
    PUTS(s_nl)
    DEBUG_EXIT(0x22)

/* The sector the drive offers into buf (256 words, one exit). */
read_sector:
    mov $buf, %edi
    mov $256, %ecx
    mov $0x1f0, %dx
    rep insw
    ret

/* Waits for the next sector, reads it and prints its text and a newline. */
print_sector:
    call wait_drq
    jc failed
    call read_sector
    PUTS(buf)
    PUTS(s_nl)
    ret

#include "ata_io.inc"
MB_HELPERS
MB_CMDLINE_END
MB_PCI_FIND

    .section .rodata
s_pci:     .asciz "controller: devfn "
s_progif:  .asciz ", programming interface "
s_nopci:   .asciz "controller: none on PCI\n"
s_model:   .asciz "identify: "
s_reading: .asciz "reading, waiting for a key\n"
s_sectors: .asciz "| sectors "
s_lba48:   .asciz " lba48 "
s_chs:     .asciz "chs: "
s_ext:     .asciz "ext: "
s_write:   .asciz "write: status "
s_flush:   .asciz "flush: status "
s_back:    .asciz "back: "
s_past:    .asciz "past the end: status "
s_error:   .asciz " error "
s_slave:   .asciz "slave: status "
s_devchk:  .asciz " devchk "
s_second:  .asciz "secondary: status "
s_irq:     .asciz "irq: status "
s_space:   .asciz " "
s_failed:  .asciz "failed: status "
s_none:    .asciz "no disk: status "
s_nl:      .asciz "\n"
    .align 4
s_written: .asciz "written by the guest"
    .skip 512 - 21
    .data
    .align 8
IDTR
sectors: .long 0
got:  .byte 0
pause: .byte 0
irq_status: .byte 0
    .bss
    .align 8
idt: .skip 256 * 8
buf: .skip 512
    .section .note.GNU-stack, "", @progbits
