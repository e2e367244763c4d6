/* What a kernel reads from the SMBIOS tables (DMI) a PC's BIOS leaves, as Linux's
 * dmi_scan finds them: the entry point "_SM_" on a 16-byte boundary of
 * [0xf0000, 0x100000), its checksum and its "_DMI_" part's, the version, the structure
 * table's address, length and count; then every structure in turn: its type, handle and
 * strings ("|" between them), the memory ranges of type 19 in KiB; the type-4 processors
 * counted against fw_cfg's CPU count, and whether the walk ended on type 127 exactly at
 * the table's end after the count the entry point gives. Debug-exit 0x28 at the end. */
#include "mb.h"
#define EP 0x7000
#define TABLE_END 0x7004
#define LEFT 0x7008
#define CPUS 0x700c
#define VALUE 0x7010
KERNEL_ENTRY
    cld
    movl $0, CPUS
    mov $0xf0000, %ebx
1:  cmpl $0x5f4d535f, (%ebx)        /* "_SM_" */
    je 2f
    add $16, %ebx
    cmp $0x100000, %ebx
    jb 1b
    PUTS(s_none)
    DEBUG_EXIT(0x28)
2:  mov %ebx, EP
    PRINT(s_ep, %ebx)
    movzbl 5(%ebx), %ecx            /* the whole entry point sums to 0 */
    call sum
    PRINT(s_sum, VALUE)
    lea 0x10(%ebx), %esi
    mov $15, %ecx                   /* so does its _DMI_ part */
    call sum_at
    PRINT(s_sum2, VALUE)
    mov EP, %ebx
    PUTS(s_version)
    movzbl 6(%ebx), %eax
    call puthex2
    PUTS(s_dot)
    movzbl 7(%ebx), %eax
    call puthex2
    PRINT(s_table, 0x18(%ebx))
    movzwl 0x16(%ebx), %eax
    mov %eax, VALUE
    PRINT(s_length, VALUE)
    movzwl 0x1c(%ebx), %eax
    mov %eax, LEFT
    PRINT(s_count, LEFT)
    PUTS(s_nl)
    mov 0x18(%ebx), %ebx            /* the first structure */
    mov EP, %eax
    movzwl 0x16(%eax), %ecx
    add %ebx, %ecx
    mov %ecx, TABLE_END
walk:
    cmpl $0, LEFT
    je ended
    decl LEFT
    PUTS(s_type)
    movzbl (%ebx), %eax
    call puthex2
    PUTS(s_handle)
    movzwl 2(%ebx), %eax
    shl $16, %eax
    mov $4, %ecx
    call puthex_n
    cmpb $4, (%ebx)
    jne 3f
    incl CPUS
3:  cmpb $19, (%ebx)
    jne 4f
    PRINT(s_from, 4(%ebx))          /* type 19: first and last KiB */
    PRINT(s_to, 8(%ebx))
4:  cmpb $1, (%ebx)
    jne 9f
    PUTS(s_uuid)                    /* type 1: the UUID's 16 bytes as stored */
    lea 8(%ebx), %esi
    call hex16
9:  movzbl 1(%ebx), %esi            /* the strings after the formatted area */
    add %ebx, %esi
    cmpb $0, (%esi)
    je 6f
    mov $' ', %al                   /* PUTS would clobber ESI */
5:  mov $0x3f8, %dx
    out %al, %dx
    call puts                       /* leaves ESI after the string's NUL */
    mov $'|', %al
    cmpb $0, (%esi)
    jne 5b
6:  PUTS(s_nl)
    cmpb $127, (%ebx)
    je last
    movzbl 1(%ebx), %esi            /* the next structure: after the double NUL */
    add %ebx, %esi
7:  cmpw $0, (%esi)
    je 8f
    inc %esi
    jmp 7b
8:  lea 2(%esi), %ebx
    cmp TABLE_END, %ebx
    jb walk
ended:
    PUTS(s_no_end)
    jmp cpus
last:
    movzbl 1(%ebx), %eax            /* type 127 has no strings: two NULs */
    lea 2(%ebx, %eax), %eax
    mov %eax, VALUE
    PRINT(s_end, VALUE)
    PRINT(s_left, LEFT)
    PUTS(s_nl)
cpus:
    PRINT(s_cpus, CPUS)
    FWCFG_CPUS
    movzwl %ax, %eax
    mov %eax, VALUE
    PRINT(s_fwcfg, VALUE)
    PUTS(s_fwuuid)                  /* fw_cfg's FW_CFG_UUID (0x02), through the data port */
    mov $0x02, %ax
    mov $0x510, %dx
    out %ax, %dx
    mov $0x7100, %edi
    mov $16, %ecx
    mov $0x511, %dx
    rep insb
    mov $0x7100, %esi
    call hex16
    PUTS(s_nl)
    DEBUG_EXIT(0x28)
dead:
    hlt
    jmp dead

/* sum: VALUE = the bytes [EBX, EBX + ECX) summed mod 256; sum_at the same from ESI. */
sum:
    mov %ebx, %esi
sum_at:
    xor %eax, %eax
1:  addb (%esi), %al
    inc %esi
    loop 1b
    mov %eax, VALUE
    ret
/* hex16: the 16 bytes at ESI as hex digits, ESI left after them (clobbers eax, ecx, edx). */
hex16:
    push %ebx
    mov $16, %ebx
1:  lodsb
    movzbl %al, %eax
    call puthex2
    dec %ebx
    jnz 1b
    pop %ebx
    ret
/* puthex_n: the top ECX hex digits of EAX (clobbers eax, ecx, edx): puthex's loop,
 * entered at its label 3 in MB_HELPERS below. */
puthex_n:
    jmp 3f

MB_HELPERS

    .section .rodata
s_none: .asciz "smbios: no entry point in [0xf0000, 0x100000)\n"
s_ep: .asciz "smbios: entry point at "
s_sum: .asciz ", checksum "
s_sum2: .asciz ", _DMI_ checksum "
s_version: .asciz ", version "
s_dot: .asciz "."
s_table: .asciz "\nsmbios: table at "
s_length: .asciz ", length "
s_count: .asciz ", structures "
s_nl: .asciz "\n"
s_type: .asciz "smbios: type "
s_handle: .asciz " handle "
s_from: .asciz " KiB "
s_to: .asciz "-"
s_end: .asciz "smbios: type 127 ends at "
s_left: .asciz ", structures left "
s_no_end: .asciz "smbios: no type 127 within the table and its count\n"
s_cpus: .asciz "smbios: processors "
s_uuid: .asciz " uuid "
s_fwuuid: .asciz "\nsmbios: fw_cfg's UUID "
s_fwcfg: .asciz "; fw_cfg's CPU count "
    .section .note.GNU-stack, "", @progbits
