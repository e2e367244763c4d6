import FuzzDriver
import Glibc
import Synchronization

// The launcher's own PC devices behind guest ports (their source files are linked here):
// a program of reads and writes of the i8042 (ports 0x60, 0x64) and the CMOS RTC (0x70,
// 0x71), and keys typed on the i8042's keyboard. The i8042's status never says "input
// buffer full" (a guest waiting for it to clear would wait for ever), "output full" is
// set exactly while a reply waits, the reply
// queue stays bounded, only the reset line's writes reset, and IRQs 1 and 12 follow the
// queue and configuration (a new edge per data read; a restore drives none), typed
// keys are taken whole or refused whole and wait in the keyboard within its limit, handed
// over one byte at a time whenever the keyboard is enabled. The RTC's register C says
// nothing but "update ended", "alarm", "periodic" and "IRQ", the last exactly when
// register B enables a flag that is set, its clock stays within the
// offset a snapshot can hold, and its state reads back through the snapshot blob (whose
// register A never keeps "update in progress"). ACPI's PM1a block (ports 0x600-0x605):
// accesses of 1, 2 or 4 bytes at any offset and power-button presses; the SCI's level is
// exactly SCI_EN && (status & enable), the status holds nothing but the button, SLP_EN is
// never kept, a write switches off exactly when its bytes set SLP_EN with sleep type 0,
// bytes past the block read all-ones, and the registers read back through the blob.
// ACPI's PM timer (port 0x608) on a clock the input moves by any amount, from a count the
// input restores: no trap, 24 bits, each read's bytes the count's, and the blob holds it.
// The VGA registers (0x3c2, 0x3cc, 0x3d4/5, 0x3da and their monochrome twins) under a
// program of the input's bytes: CR0-CR7 locked while CR11 bit 7 is set (but CR7 bit 4),
// misc bit 4 never kept, input status only ever bits 0 and 3, the range misc does not
// select all-ones, and the registers through the blob. The ATA disk (ATAProgram.swift), the
// secondary channel's empty CD-ROM drive (ATAPIProgram.swift), the floppy controller
// (FloppyProgram.swift), LPT1 (ParallelProgram.swift), the ISA DMA controllers (ISADMAProgram.swift),
// the Bochs VBE display (BochsProgram.swift), the HPET (HPETProgram.swift) and fw_cfg
// with its DMA interface over guest memory (FwCfgProgram.swift).
/// IRQs 1 and 12 as the i8042 drives them: their levels and how often each rose.
final class Lines: @unchecked Sendable {
    var level: [UInt32: Bool] = [1: false, 12: false]
    var rises: [UInt32: Int] = [1: 0, 12: 0]
    func set(_ line: UInt32, _ high: Bool) {
        FuzzDriver.check(line == 1 || line == 12, "i8042 drove IRQ \(line)")
        if high && level[line] != true { rises[line, default: 0] += 1 }
        level[line] = high
    }
    /// The levels the device's state calls for (QEMU's kbd_update_irq_lines).
    static func expected(_ kbd: I8042) -> [UInt32: Bool] {
        let s = kbd.state
        let full = !s.replies.isEmpty, mouse = s.auxReplies & 1 != 0
        return [1: full && !mouse && s.config & 0x01 != 0 && s.config & 0x10 == 0, 12: full && mouse && s.config & 0x02 != 0]
    }
    /// The levels the device's state calls for, checked.
    func check(_ kbd: I8042, _ what: String) {
        FuzzDriver.check(level == Self.expected(kbd),
                         "i8042 after \(what): IRQ 1 \(level[1]!), IRQ 12 \(level[12]!) against configuration \(kbd.state.config), \(kbd.state.replies.count) replies")
    }
}

/// A data-port read, which must raise the line of a next waiting byte again (a new edge).
func readData(_ kbd: I8042, _ lines: Lines) {
    let before = lines.rises
    _ = kbd.read(I8042.dataPort)
    lines.check(kbd, "a data read")
    for line: UInt32 in [1, 12] where lines.level[line]! {
        check(lines.rises[line]! > before[line]!, "i8042: IRQ \(line) stayed high across a data read (no new edge)")
    }
}

/// Keys typed on the keyboard: `value` picks combinations (some bad, some long, some
/// repeated past the keyboard's limit); what is typed is all of them or none.
func typeKeys(_ kbd: I8042, _ lines: Lines, _ value: UInt8) {
    let names = ["a", "shift-a", "ctrl-alt-delete", "up", "esc", "nope", "a--b", "0xe053", "kp_enter-f7-pgdn",
                 "ctrl-pause", "alt_r-print", "lang1-volumeup"]
    let count = Int(value >> 4) &* 9 &+ 1 // 1 to 136 combinations
    let combinations = Array(repeating: Substring(names[Int(value & 0x0f) % names.count]), count: count)
    let before = kbd.state
    do throws(PS2Keyboard.Refusal) {
        try kbd.sendKeys(combinations)
        let after = kbd.state
        check(after.keyboard.typed.count <= PS2Keyboard.typedLimit, "typed \(after.keyboard.typed.count) bytes")
        check(before.keyboard.scanning, "keys taken while scanning was off")
    } catch {
        let after = kbd.state
        check(after == before, "refused keys changed the device: \(error.message)")
        check(!error.message.isEmpty && !error.message.contains("\n"), "refusal: \(error.message)")
    }
    lines.check(kbd, "typed keys")
}

/// The host moves the mouse (`value` the motion, `op` bits 0-2 its scale, bit 1 also
/// "buttons as they are"): taken only while reporting is on, and then, unless the
/// auxiliary port is disabled, every packet that fits is in the queue, whole, the motion
/// waiting within its bound.
func moveMouse(_ kbd: I8042, _ lines: Lines, _ op: UInt8, _ value: UInt8) {
    let before = kbd.state
    let dx = Int32(Int8(bitPattern: value)) * Int32(op & 7 + 1) * 64
    let taken = kbd.moveMouse(dx: dx, dy: -dx / 2, wheel: Int32(op & 1), buttons: op & 2 != 0 ? nil : value & 0x1f)
    let after = kbd.state, m = after.mouse
    check(taken == (before.mouse.status & PS2Mouse.enabled != 0), "mouse: motion taken \(taken) with status \(before.mouse.status)")
    check(taken || after == before, "mouse: refused motion changed the controller")
    check(after.replies.count <= I8042.queueLimit, "mouse: \(after.replies.count) replies queued")
    let owed = after.config & 0x20 == 0 && m.status & PS2Mouse.enabled != 0 && m.status & PS2Mouse.remote == 0
        && (m.owed || m.dx != 0 || m.dy != 0 || m.dz != 0)
    check(!owed || I8042.queueLimit - I8042.replyRoom - after.replies.count < m.packetSize, "mouse: a packet owed with room for it")
    check(PS2Mouse.refusal(m) == nil, "mouse: \(PS2Mouse.refusal(m) ?? "")")
    lines.check(kbd, "mouse motion")
}

/// One PM1a access or a press: `op` bits 4-5 pick the size (1, 2, 4) or a press (3),
/// bits 0-2 the offset (6 and 7 lie past the block), `value` the byte repeated.
func pm1Access(_ pm: ACPIPowerManagement, op: UInt8, value: UInt8) {
    let sizes = [1, 2, 4], pick = Int(op >> 4) & 3, offset = Int(op & 7)
    guard pick < 3 else { return pm.pressPowerButton() }
    let size = sizes[pick]
    guard op & 0x40 != 0 else {
        let v = pm.read(offset: offset, size: size)
        for k in 0..<size where offset + k >= 6 { check((v >> UInt32(k * 8)) & 0xff == 0xff, "PM1: byte \(offset + k) read \(v)") }
        return
    }
    let before = pm.registers.control
    let written = UInt32(value) * 0x0101_0101
    let off = pm.write(written, offset: offset, size: size)
    // The control value the write made, its bytes over the old ones.
    var control = before
    for k in 0..<size where (4...5).contains(offset + k) {
        let shift = UInt16((offset + k - 4) * 8)
        control = control & ~(0xff << shift) | UInt16(value) << shift
    }
    let touched = (0..<size).contains { (4...5).contains(offset + $0) }
    let expected = touched && control & ACPIPowerManagement.sleepEnable != 0 && (control >> 10) & 7 == 0
    check((off != nil) == expected && (off == nil || off == control), "PM1: write \(value) at \(offset) size \(size): switched off \(String(describing: off))")
}

/// A PM timer restored to the input's first 4 bytes, its clock moved by each 8 bytes after.
func pmTimer(_ input: UnsafeBufferPointer<UInt8>) -> ACPIPMTimer {
    func word(_ at: Int, _ n: Int) -> UInt64 { (0..<n).reduce(0) { $0 | UInt64(at + $1 < input.count ? input[at + $1] : 0) << UInt64($1 * 8) } }
    let now = Mutex(word(4, 8))
    let timer = ACPIPMTimer(clock: { now.withLock { $0 } })
    timer.restore(UInt32(word(0, 4)))
    for at in stride(from: 12, to: input.count, by: 8) {
        now.withLock { $0 &+= word(at, 8) }
        let count = timer.count
        check(count <= ACPIPMTimer.mask, "PM timer: \(count) is wider than 24 bits")
        let offset = Int(input[at] & 3), size = [1, 2, 4, 4][Int(input[at] >> 2 & 3)]
        let expected = size == 4 ? count >> UInt32(offset * 8) : (count >> UInt32(offset * 8)) & (1 << UInt32(size * 8) - 1)
        check(timer.read(offset: offset, size: size) == expected, "PM timer: \(size) bytes at \(offset) of \(count)")
    }
    return timer
}

/// The VGA registers after the input read as (op, value) pairs: op bits 0-4 the port
/// (modulo their count), bit 5 a write. The controllers' registers always hold what a
/// write can leave, so their snapshot line reads back as it was.
func vgaProgram(_ input: UnsafeBufferPointer<UInt8>) -> VGARegisters {
    let vga = VGARegisters()
    for at in stride(from: 0, to: input.count - 1, by: 2) {
        let op = input[at], value = input[at + 1], port = VGARegisters.ports[Int(op & 0x1f) % VGARegisters.ports.count]
        let before = vga.registers
        if op & 0x20 != 0 {
            vga.write(port, value)
            let after = vga.registers
            if before.crtc[0x11] & 0x80 != 0 {
                check(after.crtc[0..<7] == before.crtc[0..<7] && after.crtc[7] & ~0x10 == before.crtc[7] & ~0x10,
                      "VGA: write \(value) to \(port) changed a locked register")
            }
            check(after.misc & 0x10 == 0 && after.status == before.status, "VGA: write \(value) to \(port): \(after)")
        } else {
            let v = vga.read(port), after = vga.registers
            if port != VGARegisters.miscWrite, port != VGARegisters.miscRead, !VGAControllers.ports.contains(port),
               VGARegisters.register(port, after.misc) == nil {
                check(v == 0xff, "VGA: \(port) outside the selected range read \(v)")
            }
            check(after.status & ~VGARegisters.retraceBits == 0 && after.crtc == before.crtc, "VGA: read of \(port): \(after)")
        }
        checkGraphics(vga.registers)
        let c = vga.registers.controllers
        do throws(LauncherError) {
            let words = c.blobLine().split(separator: " ", omittingEmptySubsequences: false)
            check(words.count == VGAControllers.blobWords, "VGA: controllers line of \(words.count) words")
            check(try VGAControllers.decode(words, { LauncherError(.snapshot, $0) }) == c, "VGA: controllers line round trip")
        } catch {
            check(false, "VGA: controllers a write left are refused at restore: \(error.message)")
        }
    }
    return vga
}

/// The picture registers `r` describe (`VGAGraphics`, what `Screendump` reads): each of
/// its lines inside the window, whatever the registers hold; their text screen's layout
/// (`VGATextLayout`) no more cells than QEMU draws, each row's start a cell offset.
func checkGraphics(_ r: VGARegisters.Registers) {
    if case .success(let t) = VGATextLayout.of(r) {
        check(t.columns == Int(r.crtc[1]) + 1 && t.rows.count * t.columns <= 16000 && t.rows.allSatisfy { $0 >= 0 },
              "VGA text: \(t.columns)x\(t.rows.count)")
    }
    guard case .success(let m) = VGAGraphics.mode(r) else { return }
    check(m.width == (Int(r.crtc[1]) + 1) * 8 && m.lines.count == m.height && m.height >= 1 && m.height <= 1024,
          "VGA graphics: \(m.width)x\(m.height), \(m.lines.count) lines")
    check(m.lines.allSatisfy { $0 >= 0 && $0 + m.width / 2 <= m.windowSize }, "VGA graphics: a line outside the window")
}

/// Registers straight from the input, a chained 256-colour mode with video on, the
/// rest (every CRT controller register, the window) as it comes: what a snapshot can restore.
func graphicsProgram(_ input: UnsafeBufferPointer<UInt8>) {
    guard input.count >= 29 else { return }
    var r = VGARegisters.Registers()
    r.crtc = Array(input[0..<25])
    r.controllers.graphics[5] = input[25] & VGAControllers.graphicsMasks[5] | 0x40
    r.controllers.graphics[6] = input[26] & VGAControllers.graphicsMasks[6] | 1
    // The same registers in text mode (GR6 bit 0 clear) for the text layout.
    var text = r
    text.controllers.graphics[6] &= ~1
    text.controllers.attributeIndex = VGAControllers.paletteSource
    checkGraphics(text)
    r.controllers.sequencer[4] = input[27] & VGAControllers.sequencerMasks[4] | 0x08
    r.controllers.attributeIndex = input[28] & 0x3f | VGAControllers.paletteSource
    checkGraphics(r)
}

/// The VGA DAC after the input read as (op, value) pairs: op bits 0-1 the port, bit 2 a
/// write; its state always one a snapshot restores.
func dacProgram(_ input: UnsafeBufferPointer<UInt8>) -> VGADAC {
    let dac = VGADAC()
    for at in stride(from: 0, to: input.count - 1, by: 2) {
        let op = input[at], port = VGADAC.ports[Int(op & 3)]
        if op & 4 != 0 { dac.write(port, input[at + 1]) } else { _ = dac.read(port) }
        check(VGADAC.refusal(dac.registers) == nil, "DAC: \(VGADAC.refusal(dac.registers) ?? "")")
    }
    return dac
}

runFuzzer { data, size in
    let input = fuzzInput(data, size)
    let kbd = I8042()
    let lines = Lines()
    kbd.connectInterrupts { lines.set($0, $1) }
    let rtc = RTC(cpus: 2, lowRAM: 64 << 20, highRAM: 0)
    let sci = Mutex(false)
    let pm = ACPIPowerManagement(acpiMode: input.first.map { $0 & 1 != 0 } ?? true, sciLine: { level in sci.withLock { $0 = level } })
    var i = 0, awaitingOutputPort = false
    while i < input.count {
        let op = input[i], value = i + 1 < input.count ? input[i + 1] : 0
        i += 2
        if op & 8 != 0 {
            pm1Access(pm, op: op, value: value)
            let r = pm.registers
            check(sci.withLock { $0 } == (r.control & 1 != 0 && r.status & r.enable != 0), "PM1: SCI level against \(r)")
            check(r.status & ~ACPIPowerManagement.powerButton == 0 && r.control & ACPIPowerManagement.sleepEnable == 0, "PM1: \(r)")
            continue
        }
        if op & 4 != 0 {
            let port = op & 1 == 0 ? RTC.indexPort : RTC.dataPort
            if op & 2 == 0 {
                let v = rtc.access(port: port, write: nil)
                if port == RTC.dataPort, rtc.state.index & 0x7f == UInt8(RTC.registerC) {
                    let enables = rtc.state.ram[RTC.registerB] & 0x70
                    precondition(v & 0x0f == 0, "RTC register C \(v): bits 0-3 are never set")
                    precondition((v & 0x80 != 0) == (v & enables != 0), "RTC register C \(v): IRQ against register B's enables \(enables)")
                }
            } else {
                rtc.access(port: port, write: value)
            }
            precondition(rtc.state.offset.magnitude <= UInt64(RTC.maxOffset), "RTC offset \(rtc.state.offset)")
            continue
        }
        if op & 0xf8 == 0xf8 {
            moveMouse(kbd, lines, op, value)
            continue
        }
        if op & 0xf0 == 0xf0 {
            typeKeys(kbd, lines, value)
            continue
        }
        let port = op & 1 == 0 ? I8042.dataPort : I8042.commandPort
        if op & 2 == 0 {
            let status = kbd.read(I8042.commandPort)
            precondition(status & 0x02 == 0, "i8042 status \(status): input buffer full")
            let s = kbd.state
            check((status & 0x20 != 0) == (!s.replies.isEmpty && s.auxReplies & 1 != 0), "i8042 status \(status): mouse bit against the queue")
            if port == I8042.dataPort { readData(kbd, lines) } else { _ = kbd.read(port) }
            continue
        }
        let pre = kbd.state
        let reset = kbd.write(port, value)
        lines.check(kbd, "a write of \(value) to \(port)")
        // A device's reset empties its queue first: its replies always fit.
        let mouseReset = pre.awaiting == 0xd4 && pre.mouse.awaiting == 0
        if port == I8042.dataPort, value == 0xff, mouseReset || (pre.awaiting == 0 && pre.keyboard.awaiting == 0) {
            let expected: [UInt8] = mouseReset ? [0xfa, 0xaa, 0x00] : [0xfa, 0xaa]
            check(Array(kbd.state.replies.suffix(expected.count)) == expected, "i8042: reset replies \(kbd.state.replies)")
        }
        let expected = port == I8042.commandPort ? (value >= 0xf0 && value & 1 == 0) : (awaitingOutputPort && value & 1 == 0)
        precondition(reset == expected, "write \(value) to \(port): reset \(reset)")
        awaitingOutputPort = port == I8042.commandPort && value == 0xd1
    }
    // Drain: at most the queue's limit of replies, with "output full" set while one waits.
    var replies = 0
    let saved = kbd.state
    while kbd.read(I8042.commandPort) & 0x01 != 0 {
        readData(kbd, lines)
        replies += 1
        precondition(replies <= I8042.queueLimit + PS2Keyboard.typedLimit, "more than \(I8042.queueLimit) replies and a keyboard's worth queued")
    }
    let drained = kbd.state
    check(drained.config & 0x10 != 0 || drained.keyboard.typed.isEmpty, "typed bytes left behind an enabled keyboard: \(drained.keyboard)")
    // A restore drives no line: the restored irqchip holds the levels and any interrupt
    // not yet delivered, and a new edge would be a second interrupt. It goes on from the
    // levels its state calls for: a data read gives a next byte its new edge.
    let restored = I8042(), restoredLines = Lines()
    restored.connectInterrupts { restoredLines.set($0, $1) }
    restored.restore(saved)
    check(restoredLines.rises == [1: 0, 12: 0] && restoredLines.level == [1: false, 12: false], "i8042: a restore drove a line")
    restoredLines.level = Lines.expected(restored)
    if restored.read(I8042.commandPort) & 0x01 != 0 { readData(restored, restoredLines) }
    let timer = pmTimer(input)
    let vga = vgaProgram(input)
    let dac = dacProgram(input)
    graphicsProgram(input)
    ataProgram(input)
    atapiProgram(input)
    floppyProgram(input)
    parallelProgram(input)
    dmaProgram(input)
    bochsProgram(input)
    hpetProgram(input)
    fwCfgProgram(input)
    // Both states through the snapshot blob and back.
    let r = pm.registers
    let state = BuiltInDeviceState(i8042: saved, pm1Control: r.control, pm1Events: .init(status: r.status, enable: r.enable),
                                   pmTimer: timer.count, vga: vga.registers, rtc: rtc.state, dac: dac.registers)
    do throws(LauncherError) {
        let back = try BuiltInDeviceState.decode(state.encoded(), version: 1, where: "fuzz")
        precondition(back == state, "snapshot round trip")
    } catch {
        preconditionFailure("a state the devices hold is refused at restore: \(error.message)")
    }
    return 0
}
