/* What OSDev's "Bare Bones" kernel and its descendants do under QEMU: print by writing
 * (character, attribute) pairs into the VGA text buffer at 0xb8000, nowhere else, then
 * halt with interrupts off. Row 0 a greeting, row 2 from column 4 bytes a terminal
 * must not receive as they are (ESC [2J, BEL, code page 437's full block), the last
 * cell of row 24 a 'Z'. Then, as text-mode kernels do, it reads the BIOS data area's
 * video mode, columns, rows, CRT controller port and COM1 port, reads the miscellaneous
 * output register (0x3cc), waits for a vertical retrace (0x3da), moves the cursor with
 * word writes to the CRT controller's port and reads it back, and tries a write to the locked CR0; prints what it
 * read and "vga: written" on COM1, and with a command line ending in "spin" it spins (a
 * snapshot's guest) instead of halting. With one ending in "scrl" it scrolls the screen
 * up a row before halting, as kernels scroll in hardware: the CRT controller's start
 * address (CR0C-CR0D) to 80, the memory it wrote unchanged. */
#include "mb.h"
#define VGA 0xb8000
KERNEL_ENTRY
    mov %ebx, mbinfo
    mov $s_hello, %esi
    mov $VGA, %edi
    call vga_puts
    mov $s_controls, %esi
    mov $(VGA + (2 * 80 + 4) * 2), %edi
    call vga_puts
    movw $0x075a, VGA + (24 * 80 + 79) * 2   /* 'Z', grey on black */
    mov $0x3cc, %dx                     /* miscellaneous output: bit 0, the colour ports */
    in (%dx), %al
    movzbl %al, %eax
    mov %eax, misc
    mov $0x3da, %dx                     /* out of a vertical retrace, then into the next */
4:  in (%dx), %al
    test $8, %al
    jnz 4b
5:  in (%dx), %al
    test $8, %al
    jz 5b
    movzbl 0x449, %eax                  /* what the BIOS data area says of the display */
    mov %eax, value
    PRINT(s_mode, value)
    movzwl 0x44a, %eax
    mov %eax, value
    PRINT(s_columns, value)
    movzbl 0x484, %eax
    inc %eax
    mov %eax, value
    PRINT(s_rows, value)
    movzwl 0x463, %eax
    mov %eax, crtc
    PRINT(s_crtc, crtc)
    movzwl 0x400, %eax
    mov %eax, value
    PRINT(s_com1, value)
    PUTS(s_nl)
    mov crtc, %edx                      /* the cursor to offset 80 (row 1): outw(crtc, 80 << 8 | 0x0f) */
    mov $0x500f, %ax
    out %ax, %dx
    mov $0x000e, %ax
    out %ax, %dx
    mov $0x0f, %al                      /* and read back */
    out %al, %dx
    inc %dx
    in (%dx), %al
    movzbl %al, %eax
    mov %eax, cursor
    dec %dx                             /* CR0 ignores a write while CR11 bit 7 is set */
    xor %al, %al
    out %al, %dx
    inc %dx
    mov $0x11, %al
    out %al, %dx
    in (%dx), %al
    movzbl %al, %eax
    mov %eax, cr0
    PRINT(s_misc, misc)
    PRINT(s_cursor, cursor)
    PRINT(s_cr0, cr0)
    PUTS(s_nl)
    PUTS(s_written)
    mov mbinfo, %esi
    call cmdline_end
    test %esi, %esi
    jz dead
    cmpl $0x6c726373, -4(%esi)             /* "scrl" */
    je 6f
    cmpl $0x6e697073, -4(%esi)             /* "spin" */
    jne dead
3:  jmp 3b
6:  mov crtc, %edx                      /* the start address's low byte (CR0D) to 80 */
    mov $0x500d, %ax
    out %ax, %dx
    jmp dead
DEAD_END

/* vga_puts: the NUL-terminated string at ESI to the cells from EDI, attribute 0x07. */
vga_puts:
    lodsb
    test %al, %al
    jz 1f
    mov $0x07, %ah
    stosw
    jmp vga_puts
1:  ret

MB_HELPERS
MB_CMDLINE_END

    .section .rodata
s_hello: .asciz "Hello, kernel World!"
s_controls: .byte 'c', 't', 'l', ':', 0x1b, '[', '2', 'J', 0x07, 0xdb, 'x', 0
s_written: .asciz "vga: written\n"
s_mode: .asciz "vga: BDA: mode "
s_columns: .asciz ", columns "
s_rows: .asciz ", rows "
s_crtc: .asciz ", CRTC port "
s_com1: .asciz ", COM1 port "
s_misc: .asciz "vga: misc "
s_cursor: .asciz ", cursor low "
s_cr0: .asciz ", CR0 "
s_nl: .asciz "\n"
    .data
mbinfo: .long 0
misc: .long 0
cursor: .long 0
cr0: .long 0
value: .long 0
crtc: .long 0
    .section .note.GNU-stack, "", @progbits
