/* The ISA DMA controllers programmed as a driver programs them, written for QEMU's `pc`
 * (hw/dma/i8257.c). Prints, a line each: the 8-bit controller's status and mask after
 * reset; channel 2 set up as Linux's floppy driver sets it up for a read (masked,
 * flip-flop cleared, mode 0x46, address 0x1000 on page 2, count 0x1ff, unmasked), then
 * read back through the flip-flop with its page and the mask; channel 5's address
 * written on the 16-bit controller (0xc4, the high byte through its odd alias 0xc5) and
 * read back with its page; a software request for channel 2 in the status, twice, then
 * the status after the request is withdrawn; the mask after a master clear. Then
 * debug-exit 0x26. Every port it touches is a device's (`--strict-io`). */
#include "mb.h"
#define OUT(port, value) mov $(value), %al; out %al, $(port)
#define SHOW(port) mov $(port), %dx; call print_port
KERNEL_ENTRY
    PUTS(s_reset)
    SHOW(0x08)
    PUTS(s_mask)
    SHOW(0x09)
    PUTS(s_nl)

    OUT(0x0a, 0x06)                 /* mask channel 2 */
    OUT(0x0c, 0)                    /* clear the flip-flop */
    OUT(0x0b, 0x46)                 /* single, write to memory, channel 2 */
    OUT(0x04, 0x00)
    OUT(0x04, 0x10)
    OUT(0x81, 0x02)
    OUT(0x05, 0xff)
    OUT(0x05, 0x01)
    OUT(0x0a, 0x02)                 /* unmask */
    OUT(0x0c, 0)
    PUTS(s_ch2)
    SHOW(0x04)
    SHOW(0x04)
    PUTS(s_count)
    SHOW(0x05)
    SHOW(0x05)
    PUTS(s_page)
    SHOW(0x81)
    PUTS(s_mask)
    SHOW(0x09)
    PUTS(s_nl)

    OUT(0xd8, 0)
    OUT(0xc4, 0x34)
    OUT(0xc5, 0x12)
    OUT(0x8b, 0x07)
    OUT(0xd8, 0)
    PUTS(s_ch5)
    SHOW(0xc4)
    SHOW(0xc4)
    PUTS(s_page)
    SHOW(0x8b)
    PUTS(s_nl)

    OUT(0x09, 0x06)                 /* request channel 2 */
    PUTS(s_request)
    SHOW(0x08)
    PUTS(s_space)
    SHOW(0x08)
    OUT(0x09, 0x02)
    PUTS(s_then)
    SHOW(0x08)
    PUTS(s_nl)

    OUT(0x0d, 0)                    /* master clear */
    PUTS(s_clear)
    SHOW(0x09)
    PUTS(s_nl)
    DEBUG_EXIT(0x26)
DEAD_END

MB_PRINT_PORT

MB_HELPERS

    .section .rodata
s_reset:   .asciz "reset: status "
s_mask:    .asciz " mask "
s_ch2:     .asciz "channel 2: address "
s_count:   .asciz " count "
s_page:    .asciz " page "
s_ch5:     .asciz "channel 5: address "
s_request: .asciz "request: status "
s_then:    .asciz " then "
s_clear:   .asciz "master clear: mask "
s_space:   .asciz " "
s_nl:      .asciz "\n"
    .section .note.GNU-stack, "", @progbits
