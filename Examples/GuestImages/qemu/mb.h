/* Shared by the QEMU-style Multiboot test kernels (ELF32, entered in 32-bit protected
 * mode with EAX = 0x2BADB002, EBX = the Multiboot info; COM1 console; debug-exit 0xf4). */
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003
#define MULTIBOOT_HEADER \
    .section .multiboot, "a"; .align 4; .long MB_MAGIC, MB_FLAGS, -(MB_MAGIC + MB_FLAGS)
#define LAPIC 0xfee00000
/* PUTS label: the NUL-terminated string at label to COM1 (clobbers eax, edx, esi). */
#define PUTS(label) mov $label, %esi; call puts
#define DEBUG_EXIT(code) mov $(code), %al; mov $0xf4, %dx; out %al, %dx
/* The helpers each kernel includes once, in its .text. */
#define MB_HELPERS \
puts: mov $0x3f8, %dx; 1: lodsb; test %al, %al; jz 2f; out %al, %dx; jmp 1b; 2: ret; \
puthex: mov $8, %ecx; 3: rol $4, %eax; push %eax; and $0xf, %al; add $'0', %al; cmp $'9', %al; jbe 4f; add $7, %al; \
    4: mov $0x3f8, %dx; out %al, %dx; pop %eax; loop 3b; ret
