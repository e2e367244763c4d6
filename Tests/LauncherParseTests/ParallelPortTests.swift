@testable import Launcher
import Testing
import Synchronization

/// LPT1 (`ParallelPort`) as a printer driver sees it through its ports, against QEMU's
/// hw/char/parallel.c in software mode; the guest on real KVM is `ParallelGuestTests`.
@Suite("the parallel port's registers, handshake and IRQ 7")
struct ParallelPortTests {
    typealias Levels = ATADiskTests.Levels

    static func port() -> (ParallelPort, Levels) {
        let p = ParallelPort(), levels = Levels()
        p.connectInterrupt { level in levels.m.withLock { $0.append(level) } }
        return (p, levels)
    }

    @Test("after a reset: data 0xff, status 0xd9 (not busy, ACK, online, no error, timeout), control 0xcc (selected, initialised); the latch reads back, all-ones with the direction in; 0x37b-0x37f read all-ones")
    func reset() {
        let (p, levels) = Self.port()
        #expect([p.read(0x378), p.read(0x379), p.read(0x37a)] == [0xff, 0xd9, 0xcc])
        p.write(0x378, 0x55)
        #expect(p.read(0x378) == 0x55)
        p.write(0x37a, 0x2c) // direction in
        #expect(p.read(0x378) == 0xff && p.read(0x37a) == 0xec)
        #expect((0x37b...0x37f).allSatisfy { p.read(UInt16($0)) == 0xff })
        #expect(levels.all.isEmpty)
    }

    @Test("a byte printed: the strobe's rise makes the printer busy, status reads then drop ACK and give it back with not-busy; with interrupts on the strobe's fall raises IRQ 7, which a status read lowers")
    func handshake() {
        let (p, levels) = Self.port()
        p.write(0x378, 0x41)
        p.write(0x37a, 0x1d) // interrupts, select, init, strobe
        #expect(p.read(0x379) == 0x59, "busy")
        p.write(0x37a, 0x1c) // strobe falls: the interrupt
        #expect(levels.all == [true])
        #expect(p.read(0x379) == 0x59)
        #expect(levels.all == [true, false])
        #expect(p.read(0x379) == 0x19, "ACK dropped")
        #expect(p.read(0x379) == 0xd9, "ACK and not busy again")
        #expect(p.read(0x379) == 0xd9)
        // Without interrupts enabled no line moves; INIT low resets the status (no timeout bit).
        p.write(0x37a, 0x0d); p.write(0x37a, 0x0c)
        #expect(levels.all == [true, false])
        p.write(0x37a, 0x08)
        #expect(p.read(0x379) == 0xd8 && p.read(0x37a) == 0xc8)
    }

    @Test("the printer gets the latch on each strobe's rise with the printer selected and initialised, not while the strobe is held, not unselected or in INIT; an access's bytes in one call, in order")
    func printer() {
        let p = ParallelPort(), got = Mutex<[[UInt8]]>([])
        p.connectPrinter { bytes in got.withLock { $0.append(bytes) } }
        p.write(0x378, 0x41)
        p.write(0x37a, 0x0d); p.write(0x37a, 0x0d) // held: one byte
        p.write(0x37a, 0x0c)
        p.write(0x378, 0x42)
        p.write(0x37a, 0x05); p.write(0x37a, 0x04) // not selected
        p.write(0x37a, 0x09); p.write(0x37a, 0x0c) // INIT low
        p.write(0x37a, 0x2d); p.write(0x37a, 0x0c) // direction in: still printed, as QEMU's
        #expect(got.withLock { $0 } == [[0x41], [0x42]])
        // One access printing twice (`rep outsb` over data and control, or a dword write):
        // one call, the bytes in the order printed.
        p.withRegisters { a in
            for (port, value) in [(0x378, 0x43), (0x37a, 0x0d), (0x37a, 0x0c), (0x378, 0x44), (0x37a, 0x0d)] as [(UInt16, UInt8)] {
                ParallelPort.write(port, value, &a)
            }
        }
        #expect(got.withLock { $0 } == [[0x41], [0x42], [0x43, 0x44]])
        #expect(p.registers.data == 0x44 && p.registers.status & ParallelPort.busy == 0)
    }

    @Test("its state through the snapshot blob into a new port: the handshake goes on, the line not driven by the restore; damaged lines refused")
    func snapshot() throws {
        let (p, _) = Self.port()
        p.write(0x378, 0x42); p.write(0x37a, 0x1d); p.write(0x37a, 0x1c)
        let blob = BuiltInDeviceState(parallel: p.registers).encoded()
        #expect(String(decoding: blob, as: UTF8.self).contains("\nparallel 0x42 0x59 0xdc 1\n"))
        let back = try BuiltInDeviceState.decode(blob, version: 1, where: "snap")
        let (fresh, levels) = Self.port()
        fresh.restore(try #require(back.parallel))
        #expect(levels.all.isEmpty)
        #expect([fresh.read(0x379), fresh.read(0x379), fresh.read(0x379)] == [0x59, 0x19, 0xd9])
        #expect(levels.all == [false])
        let devices = BuiltInDevices()
        devices.parallel = fresh
        #expect(devices.state.parallel != nil)
        try devices.restore(BuiltInDeviceState.decode(Array("vmm-launcher-devices 1\nend\n".utf8), version: 1, where: "snap"))
        #expect(fresh.registers == .init() && devices.state.parallel == nil)
        for (line, why) in [("parallel 0x41 0x20 0xcc 0", "parallel status 0x20 (only busy, ACK, online, error and timeout, 0xd9)"),
                            ("parallel 0x41 0xd9 0x0c 0", "parallel control 0xc (bits 6 and 7 always set)"),
                            ("parallel 0x41 0xd9 0xcc 2", "parallel pending '2' (0 or 1)"),
                            ("parallel 0x100 0xd9 0xcc 0", "parallel data '0x100'"),
                            ("parallel 0x41 0xd9 0xcc", "a device given twice, or the wrong number of values")] {
            guard case let .failure(e) = BuiltInDeviceStateTests.decode("vmm-launcher-devices 1\n\(line)\nend\n") else {
                Issue.record("accepted: \(line)"); continue
            }
            #expect(e.message.contains(why), "\(e.message)")
        }
    }
}
