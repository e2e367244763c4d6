#!/usr/bin/env python3
"""Writes the seed corpora in Fuzz/Corpus/<target>/ (run from the repository root after
scripts/build-guests; the outputs are committed, this script says how they were made)."""
import os, struct
root = 'Fuzz/Corpus'
def put(target, name, data):
    d = os.path.join(root, target); os.makedirs(d, exist_ok=True)
    open(os.path.join(d, name), 'wb').write(data if isinstance(data, bytes) else data.encode())
def guest(name): return open('.build/guests/' + name, 'rb').read()

def elf64(segments, entry=0x100000):
    h = bytearray(64); h[0:7] = b'\x7fELF\x02\x01\x01'
    struct.pack_into('<HHIQQQIHHH', h, 16, 2, 62, 1, entry, 64, 0, 0, 64, 56, len(segments))
    off = 64 + 56 * len(segments); ph = b''; body = b''
    for paddr, data, memsz in segments:
        ph += struct.pack('<IIQQQQQQ', 1, 7, off, paddr, paddr, len(data), memsz, 0x1000); off += len(data); body += data
    return bytes(h) + ph + body

# ELF
put('fuzz-elf', 'hello64.elf', guest('hello64.elf'))
put('fuzz-elf', 'smp.elf', guest('smp.elf'))
put('fuzz-elf', 'pvh.elf', guest('pvh.elf'))  # ELF32 with Xen's PVH entry note
put('fuzz-elf', 'bzImage', guest('bzImage'))  # the Linux loader's path too
put('fuzz-elf', 'tiny.elf', elf64([(0x100000, b'\xf4', 1)]))
put('fuzz-elf', 'bss-overlap.elf', elf64([(0x200000, b'\xff' * 32, 32), (0x100000, b'\xf4', 0x100010)]))
put('fuzz-elf', 'big-bss.elf', elf64([(0x100000, b'\xf4', 3 << 30)]))
# Multiboot: 24 bytes of fields (flags, header_addr, load_addr, load_end, bss_end, entry) + body
put('fuzz-multiboot', 'kludge', struct.pack('<6I', 0x10003, 0x100000, 0x100000, 0, 0x110000, 0x100020) + b'\xf4' * 64)
put('fuzz-multiboot', 'kludge-end', struct.pack('<6I', 0x10000, 0x100000, 0x100000, 0x100040, 0, 0x100000) + b'\x90' * 96)
put('fuzz-multiboot', 'elf32', struct.pack('<6I', 0x3, 0, 0, 0, 0, 0) + guest('multiboot.elf'))
# Flat: load (8) entry (8) mode byte (bit0 16-bit, bit1 near RAM, bit2 no entry) + code
put('fuzz-flat', 'long', struct.pack('<QQB', 0x100000, 0, 2) + b'\xb0\x00\xe6\xf4\xf4')
put('fuzz-flat', 'real', struct.pack('<QQB', 0x7c00, 0, 3 | 4) + b'\xfa\xf4' + b'\0' * 508 + b'\x55\xaa')
put('fuzz-flat', 'far', struct.pack('<QQB', 0xffff_ffff_ffff_f000, 0xffff_ffff_ffff_f001, 0) + b'\xf4' * 8)
# Config
put('fuzz-config', 'demo.json', open('Examples/GuestImages/demo.json').read())
put('fuzz-config', 'all.json', '{"image": "x.elf", "memory": "64M", "vcpus": 2, "irqchip": "kernel", "plugins": ["A,k=v"], '
    '"noDefaultPlugins": false, "serial": "file:/tmp/x", "debugcon": "stdio", "parallel": "file:/tmp/lpt", "trace": "exits", "stats": true, "maxSeconds": 1.5, '
    '"append": "quiet", "initrd": "m", "loadAddr": "0x100000", "entry": 1048576, "mode": 64, "logLevel": "info"}')
put('fuzz-config', 'fw-cfg', '{"image": "g.elf", "fwCfg": ["opt/a,string=x,,y", "name=opt/b,file=/tmp/b"]}')
put('fuzz-config', 'bad.json', '{"maxSeconds": 1e300, "memory": "99999999999G", "vcpus": 1.5}')
# Canary: steps of (rc/patch-count byte, errno byte, patches: offset lo, offset hi, len, bytes)
def step(rc, err, patches):
    out = bytes([(len(patches) << 1) | rc, err])
    for off, data in patches: out += bytes([off & 0xff, 0 if off < 256 else 0x80 | (off >> 8), len(data) - 1]) + data
    return out
io_out = step(0, 0, [(8, struct.pack('<I', 2)), (32, struct.pack('<BBHI', 1, 1, 0x3f8, 1)), (40, struct.pack('<Q', 0x800))])
io_in = step(0, 0, [(8, struct.pack('<I', 2)), (32, struct.pack('<BBHI', 0, 4, 0x60, 2)), (40, struct.pack('<Q', 0x1000))])
mmio = step(0, 0, [(8, struct.pack('<I', 6)), (32, struct.pack('<Q', 0xd0000000) + b'\x11' * 8), (48, struct.pack('<IB', 4, 1))])
fault = step(1, 3, [(8, struct.pack('<I', 39)), (32, struct.pack('<QQQ', 8, 0x5000, 0x1000))])
hlt = step(0, 0, [(8, struct.pack('<I', 5))])
put('fuzz-canary', 'io', io_out + io_in + hlt)
put('fuzz-canary', 'mmio-fault', mmio + fault + fault + fault + hlt)
put('fuzz-canary', 'eintr', step(1, 1, []) + step(1, 2, []) + hlt)
# Plugin entry: claimed size, version (major | minor << 2), id, version, description, fns, then descriptors
def desc(size, cls, base, length, prio=0, flags=None, handle=True):
    f = b'\x00' if flags is None else b'\x40' + struct.pack('<I', flags)
    return bytes([size, cls]) + struct.pack('<QQi', base, length, prio) + f + bytes([0 if handle else 1, 2])
entry = bytes([64, 1 | (1 << 2), 2, 2, 0, 3])
put('fuzz-plugin-entry', 'pio-mmio', entry + desc(56, 1, 0x3f8, 8) + desc(56, 2, 0xd0000000, 0x1000))
put('fuzz-plugin-entry', 'top', entry + desc(56, 2, 0xfffffffffffff000, 0x1000) + desc(56, 1, 0xfff0, 0x20))
put('fuzz-plugin-entry', 'ram', entry + desc(56, 2, 0x1000, 0x1000) + desc(40, 3, 0, 0))
put('fuzz-plugin-entry', 'bad-entry', bytes([8, 2, 0, 0, 0, 0]))
# UART: op byte (op % 6), operands
put('fuzz-uart', 'init', bytes([0, 3 << 3 | 0, 0x03, 2 << 3 | 0, 0xc7, 4 << 3 | 0, 0x0b, 1 << 3 | 0, 0x01, 4, 3]) + b'hi\n' + bytes([5 << 3 | 1, 1, 2 << 3 | 1, 4]))
put('fuzz-uart', 'mmio', bytes([2 | 8]) + struct.pack('<Q', 0x14) + bytes([2]) + struct.pack('<Q', 0x80) + bytes([2]) + struct.pack('<Q', 0x1c) + bytes([0]))
put('fuzz-uart', 'port', bytes([3 | 8, 0, 4]) + struct.pack('<Q', 0x01020304) + bytes([3, 5, 4, 3, 0xff, 0xff]))
# Recordings
put('fuzz-recording', 'two', 'vmmkit-exit-recording v1\nentry 1 rc=0 errno=0 core=? kernel=8:02000000\n'
    'entry 1 rc=-1 errno=14 core=8:a5a5 kernel=0:010203,4096:ff\nregs 1 ' + '07' * 144 + '\n')
put('fuzz-recording', 'io', 'vmmkit-exit-recording v1\nentry 0 rc=0 errno=0 core=? kernel=8:02000000,32:0101f8030100000000080000\n'
    'entry 0 rc=0 errno=0 core=none kernel=8:05000000\n')
# Snapshots: a kind byte (0 manifest, 1 vCPU state, 2 vm.state, 3 working set), then the file
put('fuzz-snapshot', 'manifest', b'\x00' + b'vmmkit-snapshot 1\nvcpus 1\ncapability KVM_CAP_IRQCHIP\n'
    b'region ram 0x0 0x100000 anonymous rw 0x0\nmemory memory.bin 0x100000\nstate vm.state 1112 0x1\n'
    b'state vcpu0.state 1300 0x2\ndevice plugin0.org.vmmkit.uart 1 device-plugin0.org.vmmkit.uart.state 40 0x3\n'
    b'working-set working-set 12 0x4\nend\n')
put('fuzz-snapshot', 'manifest-2', b'\x00' + b'vmmkit-snapshot 2\nvcpus 1\n'
    b'region ram 0x0 0x100000 anonymous rw 0x0\nmemory memory.bin 0x100000\nmemory-sums memory.sums\nstate vm.state 1112 0x1\n'
    b'state vcpu0.state 1300 0x2\nend\n')
def rec(tag, body): return struct.pack('<II', tag, len(body)) + body
vcpu = (rec(1, bytes(144)) + rec(2, bytes(312)) + rec(4, bytes(416)) + rec(7, struct.pack('<IIIQ', 1, 0x10, 0, 42))
        + rec(9, bytes(64)) + rec(10, struct.pack('<I', 0)) + rec(11, struct.pack('<I', 1) + bytes(40)) + rec(12, struct.pack('<I', 1000000)))
put('fuzz-snapshot', 'vcpu', b'\x01' + vcpu)
put('fuzz-snapshot', 'vm', b'\x02' + rec(32, struct.pack('<I', 0) + bytes(516)) + rec(32, struct.pack('<I', 1) + bytes(516))
    + rec(32, struct.pack('<I', 2) + bytes(516)) + rec(33, bytes(112)) + rec(34, bytes(48)))
put('fuzz-snapshot', 'working-set', b'\x03' + struct.pack('<I', 4) + struct.pack('<QQQQ', 0x1000, 0x100000, 0x100010000 - 0x1000, 0xffffffffffff0000))

# Control API bodies: a byte choosing the operation (mod 4: state, action_type, snapshot_dir, a+b), then the body
put('fuzz-control', 'pause', b'\x00' + b'{"state": "Paused"}')
put('fuzz-control', 'stop', b'\x01' + b'{ "action_type" : "Stop" }\n')
put('fuzz-control', 'snapshot', b'\x02' + '{"snapshot_dir": "/tmp/s\\u00e9\\ud83d\\ude00\\n\\"x\\\\"}'.encode())
put('fuzz-control', 'two', b'\x03' + b'{"a": "1", "b": "\xc3\xa9"}')
put('fuzz-control', 'keys', b'\x04' + b'{"keys": "ctrl-alt-delete shift-a 0xe048"}')
put('fuzz-control', 'twice', b'\x03' + b'{"a": "1", "a": "2", "b\\u001b[2J": 3}')
# Plugin files (after scripts/build-plugins): the null plugin with GNU and SysV hash tables and RELR relocations
# (named without .so, which .gitignore keeps out of the repository)
for name, seed in [('libNull.so', 'null-gnu-hash'), ('libNullSysV.so', 'null-sysv-hash'), ('libNullRELR.so', 'null-relr')]:
    put('fuzz-plugin-file', seed, open('.build/plugins/fixtures/' + name, 'rb').read())
# The launcher state of a snapshot (device-launcher.state): as vmm run writes it, and with the keys reordered
lines = ['vmm-launcher 1', 'memory 67108864', 'vcpus 2', 'irqchip kernel', 'default-plugins yes', 'strict-io no', 'serial file:/tmp/con sole.txt', 'debugcon file:/tmp/e9.log', 'parallel file:/tmp/lpt.out']
put('fuzz-launcher-state', 'saved', '\n'.join(lines + ['plugin MemoryFault,snapshot=/tmp/m.mem,base=0x200000', 'plugin ./libx.so', 'end']) + '\n')
put('fuzz-launcher-state', 'reordered', '\n'.join([lines[0]] + lines[:0:-1] + ['end']) + '\n')
# The i8042: (op, value) pairs, op bit 0 = port 0x64, bit 1 = write. Self-test and the
# configuration byte read back; a keyboard reset and identify; the output port.
put('fuzz-machine-ports', 'commands', bytes([3, 0xaa, 1, 0, 0, 0, 3, 0x20, 0, 0, 3, 0x60, 2, 0x45, 3, 0x20, 0, 0]))
put('fuzz-machine-ports', 'keyboard', bytes([2, 0xff, 2, 0xf2, 0, 0, 0, 0, 0, 0, 3, 0xd0, 0, 0, 3, 0xd1, 2, 0xcf, 3, 0xfe]))
# Typed keys (op 0xf0-0xf3; value: low nibble the combination, high nibble how many):
# shift-a, the keyboard disabled (0xad), ctrl-alt-delete 10 times, enabled (0xae), read;
# set 1 asked for (0xf0 0x01), up typed, scanning off (0xf5), a refused key, read.
put('fuzz-machine-ports', 'typed', bytes([0xf0, 0x01, 3, 0xad, 0xf0, 0x12, 3, 0xae, 0, 0, 0, 0, 2, 0xf0, 2, 0x01, 0xf0, 0x03,
                                          2, 0xf5, 0xf0, 0x00, 0, 0, 0, 0]))
# ACPI's PM1a block (op bit 3; bits 4-5 size 1/2/4 or a press, bit 6 write, bits 0-2 offset):
# PWRBTN_EN and TMR_EN, a press, status read and cleared, then soft-off (0x2020).
put('fuzz-machine-ports', 'floppy', bytes([0x41, 0x08, 0x41, 0x0c, 0x44, 0x08, 0x04, 0, 0x80, 0, 0x04, 0, 0x44, 0x03, 0x44, 0xaf, 0x44, 0x02, 0x44, 0x0e,
                                            0x04, 0, 0x04, 0, 0x80, 0, 0x04, 0, 0x44, 0x0f, 0x44, 0, 0x44, 10, 0x80, 0, 0x44, 0x08, 0x04, 0, 0x04, 0,
                                            0x44, 0xe6, 0x44, 0, 0x44, 0, 0x44, 0, 0x44, 1, 0x44, 2, 0x44, 18, 0x44, 0x1b, 0x44, 0xff, 0x03, 0]))
# The VGA controllers (vgaProgram: op bits 0-4 the port's place, bit 5 a write): blinking
# off through the attribute controller, the map mask and graphics mode written past their masks, feature control.
put('fuzz-machine-ports', 'vga-controllers', bytes([4, 0, 0x28, 0x30, 9, 0, 0x28, 0x04, 0x2b, 0x02, 0x2c, 0xff, 12, 0,
                                                    0x30, 0x05, 0x31, 0xff, 0x24, 0x10, 13, 0]))
# Mode 13h's CRT controller registers, then its GR5, GR6, SR4 and attribute index: the
# registers graphicsProgram builds (VGAGraphics) start as mode 13h's picture.
put('fuzz-machine-ports', 'mode13h', bytes([0x5f, 0x4f, 0x50, 0x82, 0x54, 0x80, 0xbf, 0x1f, 0x00, 0x41, 0x00, 0x00, 0x00, 0x00, 0x00,
                                            0x00, 0x9c, 0x0e, 0x8f, 0x28, 0x40, 0x96, 0xb9, 0xa3, 0xff, 0x40, 0x05, 0x0e, 0x20]))
put('fuzz-machine-ports', 'pm1', bytes([0x5a, 0x01, 0x38, 0, 0x18, 0, 0x58, 0xff, 0x28, 0, 0x5c, 0x20]))
# The built-in devices' blob (device-launcher-devices.state), read by the same target.
put('fuzz-launcher-state', 'devices', 'vmm-launcher-devices 1\nfw_cfg 0x0 1\nreset-control 0x0\ni8042 0x18 0x3 0xcf 0x0 0x0 -\npm1-control 0x0\nend\n')
put('fuzz-launcher-state', 'devices-all', 'vmm-launcher-devices 1\nfw_cfg 0x19 7\nreset-control 0x2\nport92 0x42\ni8042 0x1c 0x45 0xcf 0xd1 0x55 0xfa,0xaa\nps2-keyboard 1 0 0xf0 e048e0c8\nconsole 0x83\npm1-control 0x1c01\npm1-events 0x100 0x521\npm-timer 0xabcdef\nvga 0x67 0xe 0x9 5f4f50825581bf1f004f0d0e000000509c8e8f281f96b9a3ff\nrtc 0x8b -86400 00010203040506070809260b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f\nend\n')
put('fuzz-launcher-state', 'floppy', 'vmm-launcher-devices 1\nfloppy 0xc0 0xe1 0x1d 0x1 0x4 0x0 0xd0 0x20 0x3 0x4 0xa 0x0 0xa 0x1 0x0 0x60 0x1 0x0 000000000a03ff0060000000000000000000 00000100ff0000000000\nend\n')
put('fuzz-launcher-state', 'vga-controllers', 'vmm-launcher-devices 1\nvga 0x67 0xe 0x9 5f4f50825581bf1f004f0d0e000000509c8e8f281f96b9a3ff\n'
    'vga-controllers 0x2 0300050002000000 0x5 0000000000100e0fff00000000000000 0x20 0 000102030405140738393a3b3c3d3e3f0c000f0800 0x10\nend\n')
put('fuzz-launcher-state', 'parallel', 'vmm-launcher-devices 1\nparallel 0x42 0x59 0xdc 1\nend\n')
put('fuzz-launcher-state', 'isa-dma', 'vmm-launcher-devices 1\nisa-dma 0x0 0xfb 0x40 0 0x0 0x0 0x0 0x0 0x0 0x0 0x0 0x0 0x0 0x0 0x1000 0x1ff 0x1000 0x46 0x2 0x0 0x0 0x0 0x0 0x0 0x0 0xff 0x0 1 0x0 0x0 0x0 0x0 0x0 0x1234 0x0 0x2468 0x0 0x7 0x0 0x0 0x0 0x0 0x0 0x0 0x0 0x0 0x0 0x0\nend\n')
put('fuzz-launcher-state', 'fw-cfg-files', b'vmm-fw-cfg-files 1\nfile opt/vmmkit/greeting 20\nhello, from the host\nfile bootorder 3\n\x01\n\x00\nend\n')
# The RTC in the same target (op bit 2): register A read, the year set to 99, binary
# 24-hour mode, the hour set, read back.
put('fuzz-machine-ports', 'rtc', bytes([6, 0x0a, 5, 0, 6, 0x09, 7, 0x99, 5, 0, 6, 0x0b, 7, 0x06, 6, 0x04, 7, 0x13, 5, 0]))
# C plugins: plugin index, config length and text, exit count, exits (op byte: kind in
# bits 0-1, see fuzz-c-plugins), then a state blob.
def cfg(i, text): return bytes([i, len(text)]) + text.encode()
pio = lambda port_sel, off, size_sel, count, write, data=b'': bytes([(port_sel << 5) | (4 if write else 0), off, size_sel, count - 1]) + data
mmio = lambda win, off, len_, write, data=b'\0' * 8: bytes([1 | (win << 5) | (4 if write else 0)]) + struct.pack('<HB', off, len_ - 1) + data
fault = lambda gpa: bytes([2 | 8]) + struct.pack('<I', gpa)
put('fuzz-c-plugins', 'debug-exit', cfg(0, 'port=0xf4') + bytes([2]) + pio(0, 0, 0, 1, False) + pio(0, 0, 2, 1, True, b'\x2a\0\0\0'))
put('fuzz-c-plugins', 'debug-exit-mmio', cfg(0, 'mmio=0xfee00000') + bytes([2]) + mmio(2, 0, 4, True, b'\x07' + b'\0' * 7) + b'\x03' + b'\0' + b'\xfe\x00\xe0\xfe' + b'\0' * 12)
put('fuzz-c-plugins', 'memory-fault-zero', cfg(1, 'fill=zero') + bytes([2]) + fault(0x3000) + fault(0xfff0))
put('fuzz-c-plugins', 'memory-fault-snapshot', cfg(1, 'snapshot=.build-fuzz/c-plugins.mem,base=0x1000,priority=2') + bytes([3]) + fault(0x2000) + fault(0x10000) + fault(0x1000))
put('fuzz-c-plugins', 'pci-host', cfg(2, '') + bytes([4]) + pio(1, 0, 2, 1, True, b'\x04\0\0\x80') + pio(2, 0, 2, 1, False) + pio(2, 0, 1, 2, True, b'\x07\0\x07\0') + pio(1, 0, 2, 1, False) + b'\0' + b'\x04\0\0\x80')
put('fuzz-c-plugins', 'pc-testdev', cfg(3, '') + bytes([4]) + pio(3, 0, 2, 1, True, b'\x78\x56\x34\x12') + pio(3, 1, 0, 3, False) + mmio(0, 0x1230, 8, True, b'12345678') + mmio(1, 0, 8, False) + b'\0' + b'\x55' * 64)
# Async PF: policy byte, vCPU id, then ops (low nibble the kind, see fuzz-async-pf).
def wrmsr(which, value): return bytes([which << 4]) + struct.pack('<HB', value >> 6, value & 0x3f)
apf_on = wrmsr(1, 0xec << 6) + wrmsr(0, 0x20000 | 0x9)
apf_fault = b'\x02\x80' + struct.pack('<H', 0x40)  # page 0x40000
put('fuzz-async-pf', 'enable-fault-ready', b'\x00' + struct.pack('<I', 1) + apf_on + apf_fault + b'\x06'
    + b'\x03\x00' + b'\x16' + b'\x36' + wrmsr(2, 1) + b'\x36' + b'\x0a')
put('fuzz-async-pf', 'deferred-events', b'\x30' + struct.pack('<I', 0) + apf_on + apf_fault + b'\x04' + struct.pack('<QI', 0xdead000, 2)
    + b'\x05' + b'\x06' + b'\x06' + b'\x16' + b'\x16' + b'\x03\x00' + b'\x26' + b'\x1a\x04\x30' + b'\x01\x02\x03\x04')
put('fuzz-async-pf', 'halt-disable', b'\x01' + struct.pack('<I', 7) + apf_on + apf_fault + b'\x16' + apf_fault + b'\x07\x1e'
    + apf_fault + wrmsr(0, 0) + b'\x1a\x00\x00' + b'\x0a')
