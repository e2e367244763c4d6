/* Port 0x61 as a kernel uses it to time a delay or calibrate the TSC on PIT channel 2
 * (Linux's pit_calibrate_tsc), written for QEMU's `pc`, where the PIT's gate and
 * output and the speaker bit are there (QEMU's pcspk, KVM's with the in-kernel PIT).
 * Prints, a line each: the gate and speaker bits after reset; with the gate on and
 * channel 2 counting 11932 ticks (10 ms) in mode 0, the bits while it counts; whether
 * its output rose (polled, at most 16M reads) and did so no sooner than 9 ms by the
 * HPET; whether the refresh bit toggles (at most 1M reads); the speaker bit set and
 * read back; the bits with the gate off again. Then debug-exit 0x27. Every port it
 * touches is a device's (`--strict-io`). */
#include "mb.h"
#define HPET 0xfed00000
#define COUNTER (HPET + 0xf0)
KERNEL_ENTRY
    movl $1, HPET + 0x10            /* ENABLE_CNF: the HPET's counter is the clock */
    mov $0x82, %edx                 /* 9 ms in counter ticks: 9e12 fs over the period */
    mov $0xf79cd900, %eax
    divl HPET + 4
    mov %eax, nine_ms

    PUTS(s_reset)
    in $0x61, %al
    and $0x03, %eax
    call puthex2
    PUTS(s_nl)

    in $0x61, %al                   /* gate on, speaker off */
    and $0xfd, %al
    or $0x01, %al
    out %al, $0x61
    mov $0xb0, %al                  /* channel 2, low then high byte, mode 0 */
    out %al, $0x43
    mov $(11932 & 0xff), %al
    out %al, $0x42
    mov $(11932 >> 8), %al
    out %al, $0x42
    mov COUNTER, %eax
    mov %eax, start
    in $0x61, %al
    and $0x23, %eax
    mov %eax, counting
    mov $0x1000000, %ecx
1:  in $0x61, %al
    test $0x20, %al
    jnz 2f
    loop 1b
2:  and $0x20, %eax
    mov %eax, risen
    mov COUNTER, %eax
    sub start, %eax
    mov %eax, elapsed
    PUTS(s_counting)
    mov counting, %eax
    call puthex2
    PUTS(s_nl)
    PUTS(s_risen)
    mov risen, %eax
    call puthex2
    mov elapsed, %eax
    cmp nine_ms, %eax
    jb 3f
    PUTS(s_late)
    jmp 4f
3:  PUTS(s_early)
4:
    in $0x61, %al                   /* the refresh bit: until it changes */
    and $0x10, %al
    mov %al, %bl
    mov $0x100000, %ecx
5:  in $0x61, %al
    and $0x10, %al
    cmp %al, %bl
    jne 6f
    loop 5b
    PUTS(s_still)
    jmp 7f
6:  PUTS(s_toggles)
7:
    mov $0x03, %al                  /* gate and speaker on */
    out %al, $0x61
    PUTS(s_speaker)
    in $0x61, %al
    and $0x03, %eax
    call puthex2
    PUTS(s_nl)
    xor %al, %al
    out %al, $0x61
    PUTS(s_off)
    in $0x61, %al
    and $0x03, %eax
    call puthex2
    PUTS(s_nl)
    DEBUG_EXIT(0x27)
DEAD_END

MB_HELPERS

    .section .rodata
s_reset:    .asciz "after reset: gate and speaker "
s_counting: .asciz "counting: "
s_risen:    .asciz "output "
s_late:     .asciz ", after 9 ms or more\n"
s_early:    .asciz ", before 9 ms\n"
s_toggles:  .asciz "refresh bit toggles\n"
s_still:    .asciz "refresh bit still\n"
s_speaker:  .asciz "speaker on: "
s_off:      .asciz "gate off: "
s_nl:       .asciz "\n"

    .bss
nine_ms:  .long 0
start:    .long 0
elapsed:  .long 0
counting: .long 0
risen:    .long 0
