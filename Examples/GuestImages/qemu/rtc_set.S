/* Setting the CMOS RTC's clock as Linux's mc146818_set_time does, and what register C
 * says after the clock moves.
 * 1. Register B = SET | UIE | binary | 24-hour: B reads back without UIE (SET clears it).
 *    Then, field by field: century 20, year 24, month 1, day 31, month 2, day 15, hour
 *    10, minute 20, second 30. While SET holds, the seconds register reads what was
 *    written. SET cleared: the clock reads 2024-02-15 10:20 (month and day written one
 *    at a time would have rolled 31 February into March).
 *    Prints "rtc set: CCYYMMDD HHMMSSBB" (SS: the seconds read while stopped, BB: B).
 * 2. Register C read, the clock set back a year while it runs, the seconds register
 *    waited on until it changes: C reads "update ended" (0x10), as for a clock left as
 *    it was. Prints "rtc set back: 000000CC".
 * 3. Just after a second begins: the alarm 30 s ahead (any hour and minute), C read, the
 *    clock moved an hour ahead, C read at once: nothing (0), no alarm and no update
 *    for the hour skipped. Prints "rtc set forward: 000000CC".
 * Ends with debug-exit 0x1b. */
#include "mb.h"
#define CMOS_WRITE(reg, value) mov $(reg), %al; out %al, $0x70; mov $(value), %al; out %al, $0x71
#define CMOS_READ(reg) mov $(reg), %al; out %al, $0x70; in $0x71, %al
KERNEL_ENTRY
    CMOS_WRITE(0x0b, 0x96)          /* SET, UIE, binary, 24-hour */
    CMOS_READ(0x0b); mov %al, regb
    CMOS_WRITE(0x32, 20)
    CMOS_WRITE(0x09, 24)
    CMOS_WRITE(0x08, 1)
    CMOS_WRITE(0x07, 31)
    CMOS_WRITE(0x08, 2)
    CMOS_WRITE(0x07, 15)
    CMOS_WRITE(0x04, 10)
    CMOS_WRITE(0x02, 20)
    CMOS_WRITE(0x00, 30)
    CMOS_READ(0x00); mov %al, stopped
    CMOS_WRITE(0x0b, 0x06)          /* SET cleared: the clock takes the date */
    CMOS_READ(0x32); mov %al, date + 3
    CMOS_READ(0x09); mov %al, date + 2
    CMOS_READ(0x08); mov %al, date + 1
    CMOS_READ(0x07); mov %al, date
    CMOS_READ(0x04); mov %al, time + 3
    CMOS_READ(0x02); mov %al, time + 2
    PUTS(s_set)
    PRINT(s_none, date)
    PRINT(s_space, time)
    mov $'\n', %al; mov $0x3f8, %dx; out %al, %dx

    CMOS_READ(0x0c)
    CMOS_READ(0x09); dec %al; mov %al, %bl
    mov $0x09, %al; out %al, $0x70; mov %bl, %al; out %al, $0x71
    call next_second
    CMOS_READ(0x0c); movzbl %al, %eax; mov %eax, back
    PRINT(s_back, back)
    mov $'\n', %al; mov $0x3f8, %dx; out %al, %dx

    call next_second
    CMOS_READ(0x00); add $30, %al; cmp $60, %al; jb 1f; sub $60, %al
1:  mov %al, %bl
    mov $0x01, %al; out %al, $0x70; mov %bl, %al; out %al, $0x71
    CMOS_WRITE(0x03, 0xc0)
    CMOS_WRITE(0x05, 0xc0)
    CMOS_READ(0x0c)
    CMOS_READ(0x04); inc %al; cmp $24, %al; jb 2f; xor %al, %al
2:  mov %al, %bl
    mov $0x04, %al; out %al, $0x70; mov %bl, %al; out %al, $0x71
    CMOS_READ(0x0c); movzbl %al, %eax; mov %eax, forward
    PRINT(s_forward, forward)
    mov $'\n', %al; mov $0x3f8, %dx; out %al, %dx
    DEBUG_EXIT(0x1b)
dead: hlt; jmp dead

/* Returns once the seconds register has changed (clobbers eax, ebx). */
next_second:
    CMOS_READ(0x00); mov %al, %bl
1:  CMOS_READ(0x00); cmp %al, %bl; je 1b
    ret
MB_HELPERS
    .section .rodata
s_set: .asciz "rtc set: "
s_none: .asciz ""
s_space: .asciz " "
s_back: .asciz "rtc set back: "
s_forward: .asciz "rtc set forward: "
    .data
date: .long 0
time:                               /* hour, minute, the seconds read while stopped, B */
regb: .byte 0
stopped: .byte 0
    .byte 0, 0
back: .long 0
forward: .long 0
    .section .note.GNU-stack, "", @progbits
