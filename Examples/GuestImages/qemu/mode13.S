/* A kernel that switches QEMU's VGA to mode 13h (320x200, 256 colours) the way a
 * `-kernel` guest must, with no BIOS to call: it writes OSDev's "VGA Hardware" register
 * table itself (miscellaneous output, sequencer, CRT controller after unlocking CR0-CR7,
 * graphics controller, attribute controller, then video on through the attribute index),
 * loads DAC entries 1-5 (red, green, blue, white, yellow; 6-bit components) and draws in
 * the chained window at 0xa0000: pixel (0,0) red, (319,0) green, (0,199) blue, (319,199)
 * white and row 100 yellow. Prints "mode 13h: drawn", then ends with debug-exit 0x13;
 * with the command line "spin" it spins instead (for a snapshot). Every port it
 * touches is a device's (`--strict-io`). */
#include "mb.h"
#define OUTB(port, value) mov $(value), %al; mov $(port), %dx; out %al, %dx
/* TABLE(index port, table, count): index i, then byte i of the table, for i < count. */
#define TABLE(port, table, count) mov $(table), %esi; mov $(port), %edi; mov $(count), %ecx; call load_indexed
KERNEL_START
    mov $0x80000, %esp
    mov %ebx, %esi
    call cmdline_end
    CMDLINE_FLAG(0x6e697073, spin)  /* "spin" */
    OUTB(0x3c2, 0x63)
    TABLE(0x3c4, seq, 5)
    OUTB(0x3d4, 0x11)               /* unlock CR0-CR7 (CR11 bit 7) */
    mov $0x3d5, %dx
    in %dx, %al
    and $0x7f, %al
    out %al, %dx
    TABLE(0x3d4, crtc, 25)
    TABLE(0x3ce, gfx, 9)
    mov $0x3da, %dx                 /* the attribute flip-flop at the index */
    in %dx, %al
    xor %ebx, %ebx
1:  mov %bl, %al
    mov $0x3c0, %dx
    out %al, %dx                    /* index */
    mov attr(%ebx), %al
    out %al, %dx                    /* value */
    inc %ebx
    cmp $21, %ebx
    jb 1b
    OUTB(0x3c0, 0x20)               /* video on: the palette is the display's */

    OUTB(0x3c8, 1)                  /* DAC entries 1-5 */
    mov $pal_rgb, %esi
    mov $15, %ecx
    mov $0x3c9, %dx
1:  lodsb
    out %al, %dx
    loop 1b

    mov $0xa0000, %edi
    movb $1, (%edi)                 /* (0, 0) */
    movb $2, 319(%edi)              /* (319, 0) */
    movb $3, 199*320(%edi)          /* (0, 199) */
    movb $4, 199*320+319(%edi)      /* (319, 199) */
    add $100*320, %edi              /* row 100 */
    mov $0x05050505, %eax
    mov $80, %ecx
    rep stosl
    PUTS(s_drawn)
    cmpb $0, spin
    je 7f
    PUTS(s_spin)
8:  pause
    jmp 8b
7:  DEBUG_EXIT(0x13)
DEAD_END

/* load_indexed: for i < ECX, index i to port EDI, then the byte at ESI + i to EDI + 1
 * (clobbers eax, ebx, edx). */
load_indexed:
    xor %ebx, %ebx
1:  mov %edi, %edx
    mov %bl, %al
    out %al, %dx
    inc %edx
    mov (%esi,%ebx), %al
    out %al, %dx
    inc %ebx
    cmp %ecx, %ebx
    jb 1b
    ret

MB_CMDLINE_END

MB_HELPERS

    .section .rodata
/* OSDev's "VGA Hardware" mode 13h values (Chris Giese's table). */
seq:  .byte 0x03, 0x01, 0x0f, 0x00, 0x0e
crtc: .byte 0x5f, 0x4f, 0x50, 0x82, 0x54, 0x80, 0xbf, 0x1f, 0x00, 0x41, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00
      .byte 0x9c, 0x0e, 0x8f, 0x28, 0x40, 0x96, 0xb9, 0xa3, 0xff
gfx:  .byte 0x00, 0x00, 0x00, 0x00, 0x00, 0x40, 0x05, 0x0f, 0xff
attr: .byte 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f
      .byte 0x41, 0x00, 0x0f, 0x00, 0x00
pal_rgb: .byte 63, 0, 0, 0, 63, 0, 0, 0, 63, 63, 63, 63, 63, 63, 0
s_drawn: .asciz "mode 13h: drawn\n"
s_spin:  .asciz "spinning\n"
    .data
spin: .byte 0
    .section .note.GNU-stack, "", @progbits
