/* A PS/2 mouse driver's setup as hobby kernels written for QEMU do it, polled: enable the
 * auxiliary port (0xa8), then each command through 0xd4, printing every byte the mouse
 * answers (status bit 5 set: the mouse's) in hex, "--" when none comes, "k" before a
 * byte that is the keyboard's: reset (0xff), identify (0xf2), the IntelliMouse
 * detection (sample rates 200, 100, 80, then identify), status (0xe9), set resolution
 * 3, enable reporting (0xf4), status again, a poll (0xeb: a packet without motion), wrap
 * mode (0xee, a byte echoed, 0xec), and a command the mouse does not know (0xe1: no
 * reply). With the command line ending in "wait" it then prints "waiting for the mouse"
 * and the next 8 bytes the mouse sends (two IntelliMouse packets: the host moves it).
 * Ending in "noa8" it disables both ports instead (0xad, 0xa7) and, after the commands,
 * prints the configuration byte, a keyboard echo (0xee) and the configuration again: a
 * write to a device enables its port, as QEMU's kbd_write_data. Ends with debug-exit 0x1e. */
#include "mb.h"
/* SEND(byte): the byte to the mouse; MOUSE(byte): that, then all replies waiting, on one line. */
#define SEND(b) mov $(b), %bl; call mouse_send
#define MOUSE(b) SEND(b); call replies
KERNEL_START
    mov $0x80000, %esp
    mov %ebx, %esi
    call cmdline_end
    CMDLINE_FLAG(0x74696177, wait)  /* "wait" */
    CMDLINE_FLAG(0x38616f6e, noa8)  /* "noa8" */
    mov $0xa8, %al                  /* enable the auxiliary port */
    cmpb $0, noa8
    je 1f
    mov $0xad, %al                  /* or disable both ports */
    out %al, $0x64
    mov $0xa7, %al
1:  out %al, $0x64
    PUTS(s_reset)
    MOUSE(0xff)
    PUTS(s_id)
    MOUSE(0xf2)
    PUTS(s_rates)
    SEND(0xf3)
    SEND(200)
    SEND(0xf3)
    SEND(100)
    SEND(0xf3)
    MOUSE(80)
    PUTS(s_id)
    MOUSE(0xf2)
    PUTS(s_status)
    MOUSE(0xe9)
    PUTS(s_res)
    SEND(0xe8)
    MOUSE(3)
    PUTS(s_enable)
    MOUSE(0xf4)
    PUTS(s_status)
    MOUSE(0xe9)
    PUTS(s_poll)
    MOUSE(0xeb)
    PUTS(s_wrap)
    SEND(0xee)
    SEND(0x55)
    MOUSE(0xec)
    PUTS(s_unknown)
    MOUSE(0xe1)
    cmpb $0, wait
    je 3f
    PUTS(s_waiting)
    xor %edi, %edi
2:  in $0x64, %al                   /* polled: the packets' bytes as they come */
    test $1, %al
    jz 2b
    mov $' ', %al
    mov $0x3f8, %dx
    out %al, %dx
    in $0x60, %al
    call puthex2
    inc %edi
    cmp $8, %edi
    jb 2b
    PUTS(s_nl)
3:  cmpb $0, noa8
    je 5f
    PUTS(s_config)
    mov $0x20, %al
    out %al, $0x64
    call replies
    PUTS(s_echo)
    mov $0xee, %al
    out %al, $0x60
    call replies
    PUTS(s_config)
    mov $0x20, %al
    out %al, $0x64
    call replies
5:  DEBUG_EXIT(0x1e)
DEAD_END

/* mouse_send: BL to the mouse (0xd4, then the byte at port 0x60); clobbers eax. */
mouse_send:
    mov $0xd4, %al
    out %al, $0x64
    mov %bl, %al
    out %al, $0x60
    ret

/* replies: every byte waiting in the output buffer, " xx" each, a newline after; "--"
 * when none is there. The controller answers within the write's exit, so an empty
 * buffer means no reply. Clobbers eax, ecx, edx, esi, edi. */
replies:
    xor %edi, %edi
1:  in $0x64, %al
    test $1, %al
    jz 3f
    mov %al, %cl
    mov $' ', %al
    mov $0x3f8, %dx
    out %al, %dx
    test $0x20, %cl                 /* the mouse's byte? */
    jnz 2f
    mov $'k', %al
    out %al, %dx
2:  in $0x60, %al
    call puthex2
    inc %edi
    jmp 1b
3:  test %edi, %edi
    jnz 4f
    PUTS(s_none)
4:  PUTS(s_nl)
    ret

MB_HELPERS
MB_CMDLINE_END

    .section .rodata
s_reset:   .asciz "reset:"
s_id:      .asciz "id:"
s_rates:   .asciz "rates 200 100 80:"
s_status:  .asciz "status:"
s_res:     .asciz "resolution 3:"
s_enable:  .asciz "enable:"
s_poll:    .asciz "poll:"
s_wrap:    .asciz "wrap 55 ec:"
s_unknown: .asciz "unknown e1:"
s_none:    .asciz " --"
s_nl:      .asciz "\n"
s_waiting: .asciz "waiting for the mouse\n"
s_config:  .asciz "config:"
s_echo:    .asciz "keyboard ee:"
    .data
wait: .byte 0
noa8: .byte 0
    .section .note.GNU-stack, "", @progbits
