import Glibc
import VMMKit

/// `--stats` and `--trace exits`: counts and times every exit per kind, per vCPU
/// (each vCPU writes only its own row, so no lock), and prints one line per exit when
/// tracing, once handled: what the guest read (IN, MMIO read) or wrote, and the owner
/// of the handler that took it.
final class ExitStats: ExitObserver, @unchecked Sendable {
    struct Row {
        var count = [Int](repeating: 0, count: VMExitKind.allCases.count)
        var guestNanos = [UInt64](repeating: 0, count: VMExitKind.allCases.count)
        var handlerNanos = [UInt64](repeating: 0, count: VMExitKind.allCases.count)
        var lastResume: UInt64 = 0
        var dispatchStart: UInt64 = 0
        var handler = ""
    }

    private var rows: [Row]
    private let trace: Bool
    private let started = MonotonicClock.now()

    init(vcpus: Int, trace: Bool) {
        rows = Array(repeating: Row(), count: vcpus)
        self.trace = trace
        for i in rows.indices { rows[i].lastResume = started }
    }

    func willDispatch(_ exit: VMExit, on vcpu: VCPU) {
        let t = MonotonicClock.now()
        let k = VMExitKind.allCases.firstIndex(of: exit.kind)!
        rows.withUnsafeMutableBufferPointer { r in
            let i = Int(vcpu.id)
            r[i].count[k] += 1
            r[i].guestNanos[k] += t - r[i].lastResume
            r[i].dispatchStart = t
        }
    }

    var observesHandlers: Bool { trace }

    func handled(by owner: String, _ exit: VMExit, on vcpu: VCPU) {
        rows.withUnsafeMutableBufferPointer { $0[Int(vcpu.id)].handler = owner }
    }

    func didDispatch(_ exit: VMExit, verdict: ExitVerdict, on vcpu: VCPU) {
        let t = MonotonicClock.now()
        let k = VMExitKind.allCases.firstIndex(of: exit.kind)!
        rows.withUnsafeMutableBufferPointer { r in
            let i = Int(vcpu.id)
            r[i].handlerNanos[k] += t - r[i].dispatchStart
            r[i].lastResume = t
        }
        guard trace else { return }
        let by = rows.withUnsafeMutableBufferPointer { r in
            defer { r[Int(vcpu.id)].handler = "" }
            return r[Int(vcpu.id)].handler
        }
        var line = "exit vcpu\(vcpu.id) \(Self.describe(exit))"
        if !by.isEmpty { line += " by \(by)" }
        switch verdict {
        case let .stop(reason): line += " => stop: \(reason)"
        case let .fail(message): line += " => fail: \(message)"
        case .backingReplaced: line += " => backing replaced"
        case .handled, .notMine: break
        }
        // The owner and a stop or failure text are a plugin's words: one line, escaped.
        Self.err(line.asOneLine + "\n")
    }

    /// One exit after its handler ran: the data of reads is what the guest will see.
    static func describe(_ exit: VMExit) -> String {
        switch exit {
        case let .io(a): "io \(a.isWrite ? "out" : "in") port=\(hex(a.port)) size=\(a.size) count=\(a.count) data=\(elements(a))"
        case let .mmio(a): "mmio \(a.isWrite ? "write" : "read") gpa=\(hex(a.address)) len=\(a.length) data=\(hex(a.data))"
        case let .rdmsr(m): "rdmsr index=\(hex(m.index)) " + (m.error ? "#GP" : "data=\(hex(m.data))")
        case let .wrmsr(m): "wrmsr index=\(hex(m.index)) data=\(hex(m.data))"
        default: exit.kind.rawValue
        }
    }

    /// A string I/O's elements, comma-separated (the first 16).
    static func elements(_ a: PIOAccess) -> String {
        let shown = (0..<min(a.count, 16)).map { hex(a.element($0)) }.joined(separator: ",")
        return a.count > 16 ? shown + ",..." : shown
    }

    /// The table printed at the end with `--stats` (on stderr).
    func report() -> String {
        var lines = ["exit kind        count   guest+kernel ms   handler ms"]
        for (k, kind) in VMExitKind.allCases.enumerated() {
            let count = rows.reduce(0) { $0 + $1.count[k] }
            guard count > 0 else { continue }
            let guest = rows.reduce(0) { $0 + $1.guestNanos[k] }
            let handler = rows.reduce(0) { $0 + $1.handlerNanos[k] }
            lines.append(pad(kind.rawValue, 14) + pad(String(count), 8, left: true)
                + pad(ms(guest), 18, left: true) + pad(ms(handler), 13, left: true))
        }
        let total = rows.reduce(0) { $0 + $1.count.reduce(0, +) }
        lines.append("total \(total) exits in \(ms(MonotonicClock.now() - started)) ms")
        return lines.joined(separator: "\n") + "\n"
    }

    private func ms(_ nanos: UInt64) -> String {
        let tenths = nanos / 100_000
        return "\(tenths / 10).\(tenths % 10)"
    }

    private func pad(_ s: String, _ width: Int, left: Bool = false) -> String {
        let fill = String(repeating: " ", count: max(0, width - s.count))
        return left ? fill + s : s + fill
    }

    static func err(_ text: String) {
        _ = text.withCString { write(2, $0, strlen($0)) }
    }
}
