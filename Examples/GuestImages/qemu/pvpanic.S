/* A kernel's panic path as written for QEMU's pvpanic (-device pvpanic, port 0x505;
 * docs/specs/pvpanic.rst): read the events the device recognises (all-ones: no device),
 * then, by the command line's last word: "dump" reports a panic a crash kernel of its
 * own handles (bit 1; the run goes on) and then panics; "down" reports a shutdown (bit
 * 2); "none" writes bits the device does not know (0xf8); otherwise it panics (bit 0).
 * After a report that does not end the run: debug-exit 0x27. */
#include "mb.h"
#define PVPANIC 0x505
KERNEL_ENTRY
    mov %ebx, %esi
    call cmdline_end
    CMDLINE_FLAG(0x706d7564, dump)  /* "dump" */
    CMDLINE_FLAG(0x6e776f64, down)  /* "down" */
    CMDLINE_FLAG(0x656e6f6e, none)  /* "none" */
    mov $PVPANIC, %dx
    xor %eax, %eax
    in %dx, %al
    movzbl %al, %eax
    mov %eax, events
    PRINT(s_events, events)
    PUTS(s_nl)
    cmpb $0, none
    je 1f
    mov $0xf8, %al
    jmp report
1:  cmpb $0, down
    je 2f
    mov $0x04, %al
    jmp report
2:  cmpb $0, dump
    je 3f
    PUTS(s_dump)
    mov $0x02, %al
    mov $PVPANIC, %dx
    out %al, %dx
    PUTS(s_goes_on)
3:  PUTS(s_panic)
    mov $0x01, %al
report:
    mov $PVPANIC, %dx
    out %al, %dx
    PUTS(s_goes_on)
    DEBUG_EXIT(0x27)
dead:
    hlt
    jmp dead

MB_HELPERS
MB_CMDLINE_END

    .data
events: .long 0
dump: .byte 0
down: .byte 0
none: .byte 0
    .section .rodata
s_events: .asciz "pvpanic: events "
s_nl: .asciz "\n"
s_dump: .asciz "pvpanic: a crash kernel takes over\n"
s_panic: .asciz "pvpanic: panic\n"
s_goes_on: .asciz "pvpanic: still running\n"
    .section .note.GNU-stack, "", @progbits
