/* A graphics driver written as for QEMU's `-vga std` (OSDev's "Bochs VBE Extensions"):
 * finds the display on PCI bus 0 by its ids (1234:1111) and its framebuffer in BAR 0
 * (printing the BAR, its size after all-ones is written and what an attempt to move it
 * to 0xe0000000 reads back), reads the DISPI interface's id, memory size and maxima
 * (GETCAPS), sets 64x48 at 32 bits a pixel with the linear framebuffer, checks that a
 * width past the maximum is clamped, sets the mode again and draws four quadrants: red,
 * green above, blue, white below. Without a display on PCI it prints so and draws
 * nothing. With the command line "spin" it then spins (for a snapshot), otherwise ends
 * with debug-exit 0x16. With the command line " pal" the mode is 64x48 at 8 bits a pixel
 * instead, the quadrants palette entries 1-4 (red, green, blue, white) written to the
 * DAC (ports 0x3c8, 0x3c9, 6 bits a component), and entry 4 read back (0x3c7). */
#include "mb.h"
#define SET(index, value) mov $(index), %eax; mov $(value), %ecx; call dispi_set
#define GET(index) mov $(index), %eax; call dispi_get
KERNEL_START
    mov $0x80000, %esp
    mov %ebx, %esi
    call cmdline_end
    CMDLINE_FLAG(0x6c617020, pal)   /* " pal" */
    CMDLINE_FLAG(0x6e697073, spin)  /* "spin" */
    mov $0x80000000, %ebx           /* bus 0, dword 0: the ids */
    mov $0xffffffff, %esi
    mov $0x11111234, %edi
    call pci_find
    jz 3f
    PUTS(s_nopci)
    jmp 4f
3:  PUTS(s_pci)
    mov %ebx, %eax
    shr $8, %eax
    call puthex2
    lea 0x10(%ebx), %edi            /* BAR 0 */
    PUTS(s_bar)
    mov %edi, %eax
    call cfg_get
    mov %eax, fb
    call puthex
    PUTS(s_size)
    mov %edi, %eax
    mov $0xffffffff, %ecx
    call cfg_set
    mov %edi, %eax
    call cfg_get
    call puthex
    PUTS(s_moved)
    mov %edi, %eax
    mov $0xe0000000, %ecx
    call cfg_set
    mov %edi, %eax
    call cfg_get
    call puthex
    mov %edi, %eax
    mov fb, %ecx
    call cfg_set
    PUTS(s_nl)
4:  PUTS(s_id)
    GET(0)
    call put4
    PUTS(s_mem)
    GET(0xa)
    call put4
    PUTS(s_caps)
    SET(4, 0x02)                    /* GETCAPS: the resolution and depth read as maxima */
    call put_mode
    SET(4, 0)
    PUTS(s_nl)
    cmpl $0, fb
    je done
    SET(4, 0)
    SET(1, 64)
    SET(2, 48)
    SET(3, 32)
    SET(4, 0x41)                    /* enabled, linear framebuffer */
    SET(1, 0xffff)                  /* past the maximum: clamped */
    PUTS(s_clamp)
    call put_mode
    SET(4, 0)
    SET(1, 64)
    cmpb $0, pal
    je 1f
    SET(3, 8)
1:  SET(4, 0x41)                    /* enabling sets the virtual width to the width */
    PUTS(s_mode)
    call put_mode
    PUTS(s_nl)
    cmpb $0, pal
    jne draw8
    mov fb, %edi
    and $0xfffffff0, %edi
    xor %ebx, %ebx                  /* the row */
5:  mov $0x00ff0000, %eax           /* red, then green */
    mov $0x0000ff00, %edx
    cmp $24, %ebx
    jb 6f
    mov $0x000000ff, %eax           /* blue, then white */
    mov $0x00ffffff, %edx
6:  mov $32, %ecx
    rep stosl
    mov %edx, %eax
    mov $32, %ecx
    rep stosl
    inc %ebx
    cmp $48, %ebx
    jb 5b
drawn:
    PUTS(s_drawn)
done:
    cmpb $0, spin
    je 7f
    PUTS(s_spin)
8:  pause
    jmp 8b
7:  DEBUG_EXIT(0x16)
DEAD_END

/* 8 bits a pixel: the quadrants in palette entries 1-4, a row at a time. */
draw8:
    call palette
    mov fb, %edi
    and $0xfffffff0, %edi
    xor %ebx, %ebx
5:  mov $0x01010101, %eax
    mov $0x02020202, %edx
    cmp $24, %ebx
    jb 6f
    mov $0x03030303, %eax
    mov $0x04040404, %edx
6:  mov $8, %ecx                    /* 32 pixels, 4 a dword */
    rep stosl
    mov %edx, %eax
    mov $8, %ecx
    rep stosl
    inc %ebx
    cmp $48, %ebx
    jb 5b
    jmp drawn

/* palette: DAC entries 1-4 = red, green, blue, white (6-bit components), then entry 4
 * read back: "dac: state 03, entry 4 3F3F3F". Clobbers eax, ecx, edx, esi. */
palette:
    mov $1, %al
    mov $0x3c8, %dx
    out %al, %dx
    mov $pal_rgb, %esi
    mov $12, %ecx
    mov $0x3c9, %dx
1:  lodsb
    out %al, %dx
    loop 1b
    PUTS(s_dac)
    mov $4, %al
    mov $0x3c7, %dx
    out %al, %dx
    in %dx, %al
    call puthex2
    PUTS(s_entry)
    mov $3, %ecx
1:  push %ecx
    mov $0x3c9, %dx
    in %dx, %al
    call puthex2
    pop %ecx
    loop 1b
    PUTS(s_nl)
    ret

/* The mode as "XRES x YRES x BPP, virtual width VIRT" in hex (clobbers eax, ecx, edx, esi). */
put_mode:
    GET(1)
    call put4
    mov $'x', %al
    call putc
    GET(2)
    call put4
    mov $'x', %al
    call putc
    GET(3)
    call put4
    PUTS(s_virt)
    GET(6)
    call put4
    ret

/* dispi_set: DISPI register AX = CX; dispi_get: EAX = DISPI register AX (16-bit accesses). */
dispi_set:
    mov $0x1ce, %dx
    out %ax, %dx
    mov $0x1cf, %dx
    mov %cx, %ax
    out %ax, %dx
    ret
dispi_get:
    mov $0x1ce, %dx
    out %ax, %dx
    mov $0x1cf, %dx
    in %dx, %ax
    movzwl %ax, %eax
    ret

/* cfg_get: EAX = the dword at config address EAX; cfg_set: the dword at EAX = ECX. */
cfg_get:
    mov $0xcf8, %dx
    out %eax, %dx
    mov $0xcfc, %dx
    in %dx, %eax
    ret
cfg_set:
    mov $0xcf8, %dx
    out %eax, %dx
    mov $0xcfc, %dx
    mov %ecx, %eax
    out %eax, %dx
    ret

putc:
    mov $0x3f8, %dx
    out %al, %dx
    ret

/* put4: the low 16 bits of EAX in hex (clobbers eax, ecx, edx). */
put4:
    push %eax
    shr $8, %eax
    call puthex2
    pop %eax
    jmp puthex2

MB_HELPERS
MB_CMDLINE_END
MB_PCI_FIND

    .section .rodata
s_nopci: .asciz "display: none on PCI\n"
s_pci:   .asciz "display: devfn "
s_bar:   .asciz ", bar0 "
s_size:  .asciz ", sized "
s_moved: .asciz ", moved "
s_nl:    .asciz "\n"
s_id:    .asciz "dispi: id "
s_mem:   .asciz ", memory 64k x "
s_caps:  .asciz ", maxima "
s_virt:  .asciz ", virtual width "
s_clamp: .asciz "clamped: "
s_mode:  .asciz "\nmode: "
s_drawn: .asciz "drawn\n"
s_spin:  .asciz "spinning\n"
s_dac:   .asciz "dac: state "
s_entry: .asciz ", entry 4 "
pal_rgb: .byte 63, 0, 0, 0, 63, 0, 0, 0, 63, 63, 63, 63
    .data
fb:   .long 0
spin: .byte 0
pal:  .byte 0
    .section .note.GNU-stack, "", @progbits
