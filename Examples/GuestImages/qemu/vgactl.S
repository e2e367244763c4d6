/* The VGA's attribute, sequencer and graphics controllers as a text-mode kernel written
 * for QEMU's `pc` programs them after SeaBIOS set mode 3: blinking turned off through the
 * attribute controller (input status 1 read first, to put its flip-flop at the index),
 * the sequencer's map mask and the graphics controller's registers read back with
 * QEMU's masks, feature control written at 0x3da and read at 0x3ca. Prints a line for
 * each controller, then debug-exit 0x28. Every port it touches is a device's (`--strict-io`). */
#include "mb.h"
/* PORT_IN(port): AL = a byte from the port, printed in hex. */
#define PORT_IN(port) mov $(port), %dx; call print_port
#define OUTB(port, value) mov $(value), %al; mov $(port), %dx; out %al, %dx
KERNEL_ENTRY
    PUTS(s_attribute)
    mov $0x3da, %dx                 /* the flip-flop at the index */
    in %dx, %al
    PORT_IN(0x3c0)                  /* index 0x20: video on */
    PUTS(s_mode)
    OUTB(0x3c0, 0x30)               /* mode control, video still on */
    PORT_IN(0x3c1)
    PUTS(s_blink)
    OUTB(0x3c0, 0x04)               /* 0x0c without blinking */
    OUTB(0x3c0, 0x30)
    PORT_IN(0x3c1)
    PUTS(s_data)
    PORT_IN(0x3c0)                  /* the flip-flop at the data: reads 0 */
    PUTS(s_nl)

    PUTS(s_sequencer)
    OUTB(0x3c4, 0x02)
    PORT_IN(0x3c5)                  /* map mask: planes 0 and 1 */
    PUTS(s_masked)
    OUTB(0x3c5, 0xff)
    PORT_IN(0x3c5)
    OUTB(0x3c5, 0x03)
    PUTS(s_index)
    OUTB(0x3c4, 0xfa)               /* the index keeps 3 bits */
    PORT_IN(0x3c4)
    PUTS(s_nl)

    PUTS(s_graphics)
    OUTB(0x3ce, 0x06)
    PORT_IN(0x3cf)                  /* miscellaneous: text at 0xb8000 */
    PUTS(s_masked)
    OUTB(0x3ce, 0x05)
    OUTB(0x3cf, 0xff)
    PORT_IN(0x3cf)
    OUTB(0x3cf, 0x10)
    PUTS(s_nl)

    PUTS(s_feature)
    OUTB(0x3da, 0xff)
    PORT_IN(0x3ca)
    PUTS(s_enable)
    PORT_IN(0x3c3)
    PUTS(s_nl)
    DEBUG_EXIT(0x28)
DEAD_END

MB_PRINT_PORT

MB_HELPERS

    .section .rodata
s_attribute: .asciz "attribute index "
s_mode:      .asciz " mode "
s_blink:     .asciz " blink off "
s_data:      .asciz " data phase reads "
s_sequencer: .asciz "sequencer map mask "
s_masked:    .asciz " masked "
s_index:     .asciz " index "
s_graphics:  .asciz "graphics miscellaneous "
s_feature:   .asciz "feature control "
s_enable:    .asciz " enable "
s_nl:        .asciz "\n"
