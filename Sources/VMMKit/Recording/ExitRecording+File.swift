import Glibc

/// The text form of a recording (see `Docs/ExitRecording.md`): line based, hex bytes,
/// so a person can read a diff of two runs and a test can hold one in a string.
extension ExitRecording {
    public func serialized() -> String {
        var out = Self.header + "\n"
        for e in entries {
            let core = e.coreWrites.map { $0.isEmpty ? "none" : $0.map(\.description).joined(separator: ",") } ?? "?"
            out += "entry \(e.vcpu) rc=\(e.rc) errno=\(e.errno) core=\(core) kernel=\(e.kernelBytes.map(\.description).joined(separator: ","))\n"
            for regs in e.registerReads { out += "regs \(e.vcpu) \(hexString(regs))\n" }
        }
        return out
    }

    public init(parsing text: String) throws(VMMError) {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        while lines.last == "" { lines.removeLast() }
        guard lines.first == Self.header else {
            throw .invalidArgument("recording: line 1 is \((lines.first ?? "").quotedForMessage), expected '\(Self.header)'")
        }
        var entries: [Entry] = []
        // Each vCPU's newest entry, which its `regs` lines belong to: a search back through
        // the others' entries made a 3 MB file take a minute to read.
        var newest: [UInt32: Int] = [:]
        for (index, line) in lines.enumerated().dropFirst() where !line.hasPrefix("#") && !line.isEmpty {
            let n = index + 1
            let fields = line.split(separator: " ").map(String.init)
            func fail(_ why: String) -> VMMError { .invalidArgument("recording line \(n): \(why): \(line.quotedForMessage)") }
            guard fields.count >= 3, let vcpu = UInt32(plainDecimal: fields[1]) else { throw fail("expected '<kind> <vcpu> ...'") }
            switch fields[0] {
            case "entry":
                var values: [String: String] = [:]
                for field in fields.dropFirst(2) {
                    guard let eq = field.firstIndex(of: "=") else { throw fail("field \(field.quotedForMessage) is not key=value") }
                    values[String(field[..<eq])] = String(field[field.index(after: eq)...])
                }
                guard let rc = values["rc"].flatMap(Self.signed), let errno = values["errno"].flatMap(Self.signed),
                      let coreText = values["core"], let kernelText = values["kernel"] else {
                    throw fail("an entry needs rc=, errno=, core= and kernel=")
                }
                let core: [ScriptedVCPU.Patch]? = switch coreText {
                case "?": nil
                case "none": []
                default: try Self.patches(coreText, line: n)
                }
                newest[vcpu] = entries.count
                entries.append(Entry(vcpu: vcpu, rc: rc, errno: errno, coreWrites: core,
                                     kernelBytes: try Self.patches(kernelText, line: n), registerReads: []))
            case "regs":
                guard let bytes = bytes(fromHex: fields[2]) else { throw fail("register bytes are not hex") }
                guard let last = newest[vcpu] else { throw fail("registers before any entry of vCPU \(vcpu)") }
                entries[last].registerReads.append(bytes)
            default:
                throw fail("unknown line kind \(fields[0].quotedForMessage)")
            }
        }
        self.init(entries: entries)
    }

    /// Decimal digits after an optional '-', as `serialized` writes an `Int32`
    /// (`Int32(_:)` alone also reads a '+').
    static func signed(_ text: String) -> Int32? {
        let negative = text.hasPrefix("-")
        guard let magnitude = UInt32(plainDecimal: text.dropFirst(negative ? 1 : 0)) else { return nil }
        return negative ? Int32(exactly: -Int64(magnitude)) : Int32(exactly: magnitude)
    }

    static func patches(_ text: String, line: Int) throws(VMMError) -> [ScriptedVCPU.Patch] {
        try text.split(separator: ",").map { part throws(VMMError) in
            guard let colon = part.firstIndex(of: ":"), let offset = UInt64(plainDecimal: part[..<colon]).flatMap({ Int(exactly: $0) }),
                  let bytes = bytes(fromHex: String(part[part.index(after: colon)...])), !bytes.isEmpty else {
                throw .invalidArgument("recording line \(line): \(part.quotedForMessage(limit: 40)) is not <offset>:<hex bytes>")
            }
            return ScriptedVCPU.Patch(offset, bytes)
        }
    }

    /// Writes the recording to `path` (created or truncated).
    public func write(to path: String) throws(VMMError) {
        guard let file = fopen(path, "w") else { throw .systemCallFailed(name: "fopen of recording \(path)", errno: .current) }
        let text = serialized()
        let written = fwrite(text, 1, text.utf8.count, file)
        let closed = fclose(file)
        guard written == text.utf8.count, closed == 0 else { throw .systemCallFailed(name: "write of recording \(path)", errno: .current) }
    }

    /// The largest recording `load` reads (a million exits take about 60 MB).
    public static let maxFileBytes = 256 << 20

    /// Reads a recording written by `write(to:)`. Only a regular file is read: it is
    /// opened O_NONBLOCK and checked with fstat first, so a FIFO is refused, not waited on;
    /// one over `maxBytes` is refused rather than read whole into memory.
    public static func load(from path: String, maxBytes: Int = maxFileBytes) throws(VMMError) -> ExitRecording {
        let fd = try RegularFile.openForReading(path, naming: "recording \(path)").fd
        defer { close(fd) }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw .systemCallFailed(name: "read of recording \(path)", errno: .current) }
            if n == 0 { break }
            guard data.count <= maxBytes - n else { throw .invalidArgument("recording \(path): over \(maxBytes) bytes") }
            data += chunk[0..<n]
        }
        return try ExitRecording(parsing: String(decoding: data, as: UTF8.self))
    }
}

func hexString(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out = [UInt8]()
    out.reserveCapacity(bytes.count * 2)
    for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
    return String(decoding: out, as: UTF8.self)
}

func bytes(fromHex text: String) -> [UInt8]? {
    let utf8 = Array(text.utf8)
    guard utf8.count % 2 == 0 else { return nil }
    func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case 48...57: c - 48
        case 97...102: c - 87
        case 65...70: c - 55
        default: nil
        }
    }
    var out = [UInt8]()
    out.reserveCapacity(utf8.count / 2)
    var i = 0
    while i < utf8.count {
        guard let hi = nibble(utf8[i]), let lo = nibble(utf8[i + 1]) else { return nil }
        out.append(hi << 4 | lo)
        i += 2
    }
    return out
}
