/* A Linux bzImage in shape only: the setup header of boot protocol 2.15 with
 * XLF_KERNEL_64, one setup sector, and a protected-mode "kernel" whose 64-bit entry
 * (+0x200) prints what the zero page (RSI) says: type_of_loader, loadflags, the
 * RSDP's address, the command line, the initrd's contents and the e820 table; then
 * debug-exit 0x22.
 * Built as a flat file (objcopy -O binary); all addressing is RIP-relative. */
    .text
    .org 0x1f1
    .byte 1                         /* setup_sects: the kernel at file offset 0x400 */
    .org 0x1fe
    .word 0xaa55                    /* boot_flag */
    .byte 0xeb, 0x6a                /* jump: the header ends at 0x202 + 0x6a = 0x26c */
    .ascii "HdrS"
    .word 0x020f                    /* version 2.15 */
    .org 0x211
    .byte 0x01                      /* loadflags: LOADED_HIGH */
    .org 0x214
    .long 0x100000                  /* code32_start */
    .org 0x22c
    .long 0x7fffffff                /* initrd_addr_max */
    .org 0x236
    .word 0x0003                    /* xloadflags: XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G */
    .long 2047                      /* cmdline_size */
    .org 0x260
    .long 0x100000                  /* init_size */
    .org 0x400                      /* the protected-mode kernel, loaded at 1 MiB */
    .code32
startup_32:                         /* never entered by a 64-bit loader */
    mov $0x66, %al
    out %al, $0xf4
    hlt
    .org 0x600
    .code64
startup_64:
    mov %rsi, %rbp
    lea s_loader(%rip), %rsi
    call puts
    movzbl 0x210(%rbp), %eax        /* type_of_loader */
    call puthex
    lea s_flags(%rip), %rsi
    call puts
    movzbl 0x211(%rbp), %eax        /* loadflags */
    call puthex
    lea s_rsdp(%rip), %rsi
    call puts
    mov 0x70(%rbp), %eax            /* acpi_rsdp_addr (low half) */
    call puthex
    lea s_cmdline(%rip), %rsi
    call puts
    mov 0x228(%rbp), %esi           /* cmd_line_ptr */
    call puts
    lea s_initrd(%rip), %rsi
    call puts
    mov 0x218(%rbp), %esi           /* ramdisk_image */
    mov 0x21c(%rbp), %ecx           /* ramdisk_size */
    mov $0x3f8, %dx
1:  jrcxz 2f
    lodsb
    out %al, %dx
    dec %rcx
    jmp 1b
2:  lea s_e820(%rip), %rsi
    call puts
    movzbl 0x1e8(%rbp), %edi        /* e820_entries */
    lea 0x2d0(%rbp), %rbx           /* e820_table: addr, size (u64), type (u32) */
3:  test %edi, %edi
    jz 4f
    lea s_map(%rip), %rsi
    call puts
    mov 4(%rbx), %eax
    call puthex
    mov (%rbx), %eax
    call puthex
    lea s_len(%rip), %rsi
    call puts
    mov 12(%rbx), %eax
    call puthex
    mov 8(%rbx), %eax
    call puthex
    lea s_type(%rip), %rsi
    call puts
    mov 16(%rbx), %eax
    call puthex
    add $20, %rbx
    dec %edi
    jmp 3b
4:  lea s_nl(%rip), %rsi
    call puts
    mov $0x22, %al
    out %al, $0xf4
5:  hlt
    jmp 5b

puts:                               /* the NUL-terminated string at RSI to COM1 */
    mov $0x3f8, %dx
1:  lodsb
    test %al, %al
    jz 2f
    out %al, %dx
    jmp 1b
2:  ret

puthex:                             /* EAX as 8 hex digits */
    mov $8, %ecx
1:  rol $4, %eax
    push %rax
    and $0xf, %al
    add $'0', %al
    cmp $'9', %al
    jbe 2f
    add $7, %al
2:  mov $0x3f8, %dx
    out %al, %dx
    pop %rax
    loop 1b
    ret

s_loader:  .asciz "linux: type_of_loader "
s_flags:   .asciz " loadflags "
s_rsdp:    .asciz " acpi_rsdp_addr "
s_cmdline: .asciz "\ncmdline: "
s_initrd:  .asciz "\ninitrd: "
s_e820:    .asciz "\ne820"
s_map:     .asciz "\nmmap "
s_len:     .asciz " len "
s_type:    .asciz " type "
s_nl:      .asciz "\n"
    .section .note.GNU-stack, "", @progbits
