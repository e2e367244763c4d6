@testable import Launcher
import Testing

/// The ISA DMA controllers (`ISADMA`) as a driver programs them, against QEMU's
/// hw/dma/i8257.c with no transfer; the guest on real KVM is `ISADMAGuestTests`.
@Suite("the ISA DMA controllers' registers")
struct ISADMATests {
    /// Channel 2 as Linux's floppy driver sets it up for a read: masked, flip-flop
    /// cleared, mode 0x46, address 0x1000 on page 2, count 0x1ff, unmasked.
    static func floppyRead(_ d: ISADMA) {
        for (port, value): (UInt16, UInt8) in [(0x0a, 0x06), (0x0c, 0), (0x0b, 0x46), (0x04, 0x00), (0x04, 0x10), (0x81, 0x02),
                                               (0x05, 0xff), (0x05, 0x01), (0x0a, 0x02)] { d.write(port, value) }
    }

    @Test("after a reset: every channel masked (0xff), status 0, the channels' registers 0; 0x80, 0x84 and 0x88 are not its ports; the temporary register reads 0")
    func reset() {
        let d = ISADMA()
        #expect([d.read(0x08), d.read(0x09), d.read(0x81), d.read(0x04), d.read(0x0d), d.read(0xd2), d.read(0xc4)] == [0, 0xff, 0, 0, 0, 0xff, 0])
        #expect([d.read(0x80), d.read(0x84), d.read(0x88)] == [0xff, 0xff, 0xff])
    }

    @Test("a channel programmed as a floppy read reads back byte by byte through the flip-flop, its page and the mask; the 16-bit controller keeps its address in words (odd ports alias even ones)")
    func programmed() {
        let d = ISADMA()
        Self.floppyRead(d)
        d.write(0x0c, 0)
        #expect([d.read(0x04), d.read(0x04), d.read(0x05), d.read(0x05), d.read(0x81), d.read(0x09)] == [0x00, 0x10, 0xff, 0x01, 0x02, 0xfb])
        #expect(d.registers[0].channels[2] == .init(baseAddress: 0x1000, baseCount: 0x1ff, address: 0x1000, mode: 0x46, page: 2))
        // Channel 5: controller 1's channel 1, address at 0xc4 (0xc5 the same register).
        d.write(0xd8, 0); d.write(0xc4, 0x34); d.write(0xc5, 0x12); d.write(0x8b, 0x07)
        #expect(d.registers[1].channels[1].address == 0x2468)
        d.write(0xd9, 0)
        #expect([d.read(0xc4), d.read(0xc4), d.read(0x8b)] == [0x34, 0x12, 0x07])
        // The address counts from its high byte's write: a low byte alone leaves it.
        d.write(0x0c, 0); d.write(0x04, 0x55)
        d.write(0x0c, 0)
        #expect([d.read(0x04), d.read(0x04)] == [0x00, 0x10])
    }

    @Test("a software request sets the status's DREQ bit, read back and kept; a master clear masks all and clears the status and command; an unsupported command is ignored")
    func controls() {
        let d = ISADMA()
        d.write(0x09, 0x06)
        #expect(d.read(0x08) == 0x40 && d.read(0x08) == 0x40)
        d.write(0x09, 0x02)
        #expect(d.read(0x08) == 0x00)
        d.write(0x08, 0x04)
        d.write(0x08, 0x01)
        #expect(d.registers[0].command == 0x04)
        d.write(0x0e, 0); d.write(0x09, 0x07); d.write(0x04, 0x11)
        #expect(d.read(0x09) == 0x00 && d.registers[0].flipFlop)
        d.write(0x0d, 0)
        #expect(d.read(0x09) == 0xff && d.read(0x08) == 0 && d.registers[0].command == 0 && !d.registers[0].flipFlop)
        d.write(0x0f, 0x05)
        #expect(d.read(0x09) == 0x05)
    }

    @Test("the controllers through the snapshot blob into new ones; damaged lines refused; any byte at any port leaves a state the blob takes back")
    func snapshot() throws {
        let d = ISADMA()
        Self.floppyRead(d)
        d.write(0xc4, 0x34); d.write(0xd6, 0x05)
        let back = try BuiltInDeviceState.decode(BuiltInDeviceState(dma: d.registers).encoded(), version: 1, where: "snap")
        #expect(back.dma == d.registers)
        let fresh = ISADMA()
        fresh.restore(try #require(back.dma))
        fresh.write(0x0c, 0)
        #expect([fresh.read(0x04), fresh.read(0x04), fresh.read(0xc4)] == [0x00, 0x10, 0x00])
        let devices = BuiltInDevices()
        devices.dma = fresh
        try devices.restore(BuiltInDeviceState.decode(Array("vmm-launcher-devices 1\nend\n".utf8), version: 1, where: "snap"))
        #expect(devices.state.dma == nil)
        var words = ISADMA.blobLine(ISADMA.resetRegisters).split(separator: " ").map(String.init)
        for (i, w, why) in [(3, "0x1", "isa-dma controller 0 status 0x1 (no transfer ever reaches a terminal count)"),
                            (4, "2", "isa-dma controller 0 flip-flop '2' (0 or 1)"), (1, "0x3", "isa-dma controller 0 command 0x3"),
                            (7, "0x10000", "isa-dma channel 0 address 0x10000 or mode 0x0"), (7, "0x100000000", "isa-dma channel 0 address '0x100000000'"), (31, "0x1", "isa-dma channel 4 address 0x1 or mode 0x0"),
                            (13, "0x3", "isa-dma channel 1 address 0x0 or mode 0x3")] {
            let saved = words[i]
            words[i] = w
            guard case let .failure(e) = BuiltInDeviceStateTests.decode("vmm-launcher-devices 1\n" + words.joined(separator: " ") + "\nend\n") else {
                Issue.record("accepted \(w) at \(i)"); words[i] = saved; continue
            }
            #expect(e.message.contains(why), "\(e.message)")
            words[i] = saved
        }
        var seed: UInt32 = 12345
        for _ in 0..<20000 {
            seed = seed &* 1_103_515_245 &+ 12345
            let port = ISADMA.ports[Int(seed >> 16) % ISADMA.ports.count], value = UInt8(truncatingIfNeeded: seed >> 8)
            if seed & 1 == 0 { fresh.write(port, value) } else { _ = fresh.read(port) }
        }
        #expect(try BuiltInDeviceState.decode(BuiltInDeviceState(dma: fresh.registers).encoded(), version: 1, where: "snap").dma == fresh.registers)
    }
}
