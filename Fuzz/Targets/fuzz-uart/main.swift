import FuzzDriver
import UART16550

// The 16550A register model: the input is a program of guest register accesses
// (byte lane, MMIO and port decodes with any offset, shift and size), host bytes, a
// console that fills up and frees room again, and UART configuration strings.
final class Room: @unchecked Sendable { var free = true }


runFuzzer { data, size in
    let input = fuzzInput(data, size)
    let room = Room()
    let uart = UART16550(irqGatedByOUT2: input.first.map { $0 & 1 == 0 } ?? true, send: { _ in room.free },
                         ready: { room.free }, irq: { _ in })
    var i = 1
    func next() -> UInt8? { guard i < input.count else { return nil }; defer { i += 1 }; return input[i] }
    func next64() -> UInt64 { (0..<8).reduce(0) { acc, k in acc | UInt64(next() ?? 0) << (8 * UInt64(k)) } }
    while let op = next() {
        switch op % 8 {
        case 0: uart.write(Int(op >> 3), next() ?? 0)
        case 1: _ = uart.read(Int(op >> 3))
        case 2: _ = uart.mmioAccess(offset: next64(), shift: Int(Int8(bitPattern: next() ?? 0)), write: op & 8 != 0 ? next64() : nil)
        case 3:
            let first = Int(Int8(bitPattern: next() ?? 0)), width = Int(Int8(bitPattern: next() ?? 0))
            _ = uart.portAccess(first: first, size: width, write: op & 8 != 0 ? UInt32(truncatingIfNeeded: next64()) : nil)
        case 4:
            let n = Int(next() ?? 0)
            var bytes: [UInt8] = []
            for _ in 0..<n { bytes.append(next() ?? 0) }
            uart.receive(bytes)
        case 5:
            room.free.toggle()
            if room.free { uart.transmitterRoom() }
        case 6:
            let n = Int(next() ?? 0)
            var bytes: [UInt8] = []
            for _ in 0..<n { bytes.append(next() ?? 0) }
            _ = try? UARTConfig.parse(String(decoding: bytes, as: UTF8.self))
        default:
            _ = uart.irqLevel; _ = uart.queuedInput
            guard op & 0x80 != 0 else { break }
            // State: the UART's own restores; a blob from the input (its saved state with
            // input bytes laid over and after it) is refused or saves back as it was,
            // but for the IRQ level, which the restore recomputes from the registers.
            let own = uart.savedState()
            check((try? uart.restoreState(own)) != nil, "the UART's own state is refused")
            var blob = op & 0x40 != 0 ? [] : own
            let n = Int(next() ?? 0), at = Int(next() ?? 0)
            for k in 0..<n { let b = next() ?? 0; if at + k < blob.count { blob[at + k] = b } else { blob.append(b) } }
            guard (try? uart.restoreState(blob)) != nil else { break }
            var back = uart.savedState()
            back[11] = blob[11]
            check(back == blob, "a restored state of \(blob.count) bytes saved back as \(back.count) other bytes")
        }
    }
    return 0
}
