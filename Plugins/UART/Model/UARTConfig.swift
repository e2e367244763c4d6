/// Where one UART sits and what it is wired to, parsed from the plugin convention
/// "key=value,key=value". Every refusal names the key at fault.
///
/// Keys: `port` (PIO base, default 0x3f8) or `mmio` (guest-physical base), `shift`
/// (MMIO register shift 0, 1 or 2: registers 1, 2 or 4 bytes apart), `irq` (default 4),
/// `output` (stdout, stderr, buffer, none or file:PATH), `input` (none, stdin, buffer or
/// file:PATH), `coalesce` (on/off: queue THR writes in the kernel), `name`, `txbuffer`
/// (bytes of output held for a console that falls behind, 1..64 MiB, default 1 MiB).
public struct UARTConfig: Sendable, Equatable {
    public enum Placement: Sendable, Equatable {
        case pio(port: UInt16)
        case mmio(address: UInt64, shift: Int)
    }

    public enum Output: Sendable, Equatable {
        case stdout, stderr, buffer, none
        case file(String)
    }

    public enum Input: Sendable, Equatable {
        case none, stdin, buffer
        /// Bytes of a file (or a FIFO), as if typed.
        case file(String)
    }

    public var name: String
    public var placement: Placement
    public var irq: UInt32
    public var output: Output
    public var input: Input
    public var coalesce: Bool
    public var txBuffer = UARTOutputSink.defaultCapacity

    public static let knownKeys = ["port", "mmio", "shift", "irq", "output", "input", "coalesce", "name", "txbuffer"]
    public static let maxTxBuffer: UInt64 = 64 << 20

    public init(name: String = "com1", placement: Placement = .pio(port: 0x3f8), irq: UInt32 = 4,
                output: Output = .stdout, input: Input = .none, coalesce: Bool = false) {
        self.name = name
        self.placement = placement
        self.irq = irq
        self.output = output
        self.input = input
        self.coalesce = coalesce
    }

    /// Bytes (MMIO) or ports (PIO) the eight registers span.
    public var span: UInt64 {
        switch placement {
        case .pio: 8
        case let .mmio(_, shift): 8 << UInt64(shift)
        }
    }

    public var base: UInt64 {
        switch placement {
        case let .pio(port): UInt64(port)
        case let .mmio(address, _): address
        }
    }

    /// Parses one instance's configuration ("" gives COM1 on stdout).
    public static func parse(_ text: String) throws(UARTConfigError) -> UARTConfig {
        var config = UARTConfig()
        // An array, not a Set<String>: a handful of keys, and the first Set<String> in a
        // process makes the runtime scan every loaded image's conformance records
        // (~0.5 million instructions at every `vmm run`, callgrind).
        var seen: [String] = []
        var port: UInt64?, mmio: UInt64?, shift: UInt64?
        for item in text.split(separator: ",", omittingEmptySubsequences: true) {
            guard let eq = item.firstIndex(of: "=") else {
                throw UARTConfigError("uart: expected key=value, got '\(item)'", key: String(item))
            }
            let key = String(item[..<eq]).trimmingSpaces
            let value = String(item[item.index(after: eq)...]).trimmingSpaces
            guard knownKeys.contains(key) else {
                throw UARTConfigError("uart: unknown key '\(key)' (known keys: \(knownKeys.joined(separator: ", ")))", key: key)
            }
            guard !seen.contains(key) else { throw UARTConfigError("uart: key '\(key)' given twice", key: key) }
            seen.append(key)
            func number(max: UInt64, what: String) throws(UARTConfigError) -> UInt64 {
                guard let v = parseNumber(value), v <= max else {
                    throw UARTConfigError("uart: bad value '\(value)' for key '\(key)' (\(what))", key: key)
                }
                return v
            }
            switch key {
            case "port": port = try number(max: 0xfff8, what: "a port base, 0..0xfff8")
            case "mmio": mmio = try number(max: UInt64.max - 32, what: "a guest-physical address")
            case "shift":
                guard let v = parseNumber(value), v <= 2 else {
                    throw UARTConfigError("uart: bad value '\(value)' for key 'shift' (the MMIO register shift must be 0, 1 or 2)", key: key)
                }
                shift = v
            case "txbuffer": config.txBuffer = Int(try number(max: maxTxBuffer, what: "bytes, 1..64 MiB"))
                if config.txBuffer == 0 { throw UARTConfigError("uart: bad value '\(value)' for key 'txbuffer' (bytes, 1..64 MiB)", key: key) }
            case "irq": config.irq = UInt32(try number(max: 23, what: "an IRQ line, 0..23"))
            case "name":
                guard !value.isEmpty else { throw UARTConfigError("uart: key 'name' needs a value", key: key) }
                config.name = value
            case "coalesce":
                switch value {
                case "on", "1", "true", "yes": config.coalesce = true
                case "off", "0", "false", "no": config.coalesce = false
                default: throw UARTConfigError("uart: bad value '\(value)' for key 'coalesce' (on or off)", key: key)
                }
            case "input":
                switch value {
                case "none": config.input = .none
                case "stdin": config.input = .stdin
                case "buffer": config.input = .buffer
                default:
                    guard value.hasPrefix("file:"), value.count > 5 else {
                        throw UARTConfigError("uart: bad value '\(value)' for key 'input' (none, stdin, buffer or file:PATH)", key: key)
                    }
                    config.input = .file(String(value.dropFirst(5)))
                }
            default: // output
                switch value {
                case "stdout": config.output = .stdout
                case "stderr": config.output = .stderr
                case "buffer": config.output = .buffer
                case "none": config.output = .none
                default:
                    guard value.hasPrefix("file:"), value.count > 5 else {
                        throw UARTConfigError("uart: bad value '\(value)' for key 'output' (stdout, stderr, buffer, none or file:PATH)", key: key)
                    }
                    config.output = .file(String(value.dropFirst(5)))
                }
            }
        }
        if port != nil, mmio != nil {
            throw UARTConfigError("uart: key 'mmio' cannot be combined with key 'port'", key: "mmio")
        }
        if let mmio {
            config.placement = .mmio(address: mmio, shift: Int(shift ?? 0))
        } else {
            if shift != nil {
                throw UARTConfigError("uart: key 'shift' applies only to an MMIO UART (give key 'mmio')", key: "shift")
            }
            if let port { config.placement = .pio(port: UInt16(port)) }
        }
        return config
    }

    /// Refuses instances whose register windows overlap, naming the later one's key.
    public static func checkOverlaps(_ configs: [UARTConfig]) throws(UARTConfigError) {
        for (i, b) in configs.enumerated() {
            for a in configs[..<i] {
                let sameSpace: Bool
                switch (a.placement, b.placement) {
                case (.pio, .pio), (.mmio, .mmio): sameSpace = true
                default: sameSpace = false
                }
                guard sameSpace, b.base < a.base + a.span, a.base < b.base + b.span else { continue }
                let key = b.isPIO ? "port" : "mmio"
                throw UARTConfigError(
                    "uart '\(b.name)': key '\(key)' = \(hex(b.base)) overlaps uart '\(a.name)' at \(hex(a.base))..\(hex(a.base + a.span - 1))",
                    key: key)
            }
        }
    }

    var isPIO: Bool { if case .pio = placement { true } else { false } }
}

/// A configuration refusal: `message` is for people, `key` for programs.
public struct UARTConfigError: Error, Equatable, CustomStringConvertible, Sendable {
    public let message: String
    public let key: String
    public init(_ message: String, key: String) { self.message = message; self.key = key }
    public var description: String { message }
}

/// 0x.. hex, 0o.. octal, 0b.. binary or decimal: digits of the radix only; nil for
/// anything else. `UInt64(_:radix:)` alone also took a sign ("irq=+5", "port=0x+3f8",
/// "mmio=0x-0"), which the launcher's numbers and the plugin SDK's `integer` refuse.
func parseNumber(_ text: String) -> UInt64? {
    let lower = text.lowercased()
    var digits = Substring(lower), radix: UInt8 = 10
    for (prefix, r) in [("0x", UInt8(16)), ("0o", 8), ("0b", 2)] where lower.hasPrefix(prefix) {
        digits = lower.dropFirst(2)
        radix = r
    }
    guard !digits.isEmpty, digits.utf8.allSatisfy({ c in
        let value = (0x30...0x39).contains(c) ? c - 0x30 : (0x61...0x66).contains(c) ? c - 0x61 + 10 : 0xff
        return value < radix
    }) else { return nil }
    return UInt64(digits, radix: Int(radix))
}

func hex<T: BinaryInteger>(_ value: T) -> String { "0x" + String(value, radix: 16) }

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " { s.removeFirst() }
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}
