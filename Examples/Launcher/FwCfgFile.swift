import VMMKit

/// A file the user hands the guest through fw_cfg's file directory: `--fw-cfg
/// [name=]NAME,file=PATH` or `[name=]NAME,string=TEXT` (config `fwCfg`), QEMU's `-fw_cfg`
/// with its syntax. Guests written for QEMU find their configuration, keys or scripts
/// there by name (`opt/...`). Pure values: the spec parser and the snapshot blob are
/// fuzzed (fuzz-config, fuzz-launcher-state); reading a `file=` is `FwCfgFile+Load`.
struct FwCfgFile: Equatable {
    var name: String
    var bytes: [UInt8]

    /// QEMU's FW_CFG_MAX_FILE_PATH less its NUL: the directory entry holds 56 bytes.
    static let maxNameLength = 55
    /// Files the user may add (QEMU's `pc` has 32 file slots in all, its own included).
    static let maxCount = 16
    /// Files a snapshot's blob may hold: the user's and the machine's `etc/pvpanic-port`
    /// (`PVPanic.fwCfgFile`, with `--pvpanic`).
    static let maxSavedCount = maxCount + 1
    /// Bytes of one file and of all together: they live in the launcher's memory and in
    /// a snapshot's `fw-cfg-files` blob (at most 16 MiB, the format's limit for a file).
    static let maxTotalSize = 8 << 20
    /// The names the machine's own fw_cfg already has.
    static let reservedNames: Set<String> = ["etc/e820"]

    enum Content: Equatable {
        case file(String)
        case string(String)
    }

    /// One `--fw-cfg` as given, before any file is read.
    struct Spec: Equatable {
        var name: String
        var content: Content
    }

    /// Why a spec, a name or a list of them is refused: one line, without where.
    struct Refusal: Error, Equatable {
        let why: String
    }

    /// Parses QEMU's `-fw_cfg` argument: comma-separated `key=value` items (`,,` is a comma
    /// inside a value), the first of which may be the bare name; keys `name` and exactly one
    /// of `file` and `string` (QEMU's `gen_id` needs objects this launcher does not have).
    static func parse(_ text: String) throws(Refusal) -> Spec {
        var name: String?, file: String?, string: String?
        for (index, item) in splitOptions(text).enumerated() {
            guard let eq = item.firstIndex(of: "=") else {
                guard index == 0 else { throw Refusal(why: "\(item.quotedForMessage) is not key=value") }
                name = item
                continue
            }
            let key = String(item[..<eq]), value = String(item[item.index(after: eq)...])
            switch key {
            case "name", "file", "string":
                let slot = key == "name" ? name : key == "file" ? file : string
                guard slot == nil else { throw Refusal(why: "'\(key)' given twice") }
                if key == "name" { name = value } else if key == "file" { file = value } else { string = value }
            case "gen_id": throw Refusal(why: "'gen_id' is not supported (no objects generate fw_cfg data here)")
            default: throw Refusal(why: "unknown key \(key.quotedForMessage) (known: name, file, string)")
            }
        }
        guard let name, !name.isEmpty else { throw Refusal(why: "no name (give NAME,file=PATH or NAME,string=TEXT)") }
        try check(name: name)
        switch (file, string) {
        case let (file?, nil):
            guard !file.isEmpty else { throw Refusal(why: "an empty 'file'") }
            return Spec(name: name, content: .file(file))
        case let (nil, string?):
            guard !string.isEmpty else { throw Refusal(why: "an empty 'string' (QEMU refuses it too)") }
            guard string.utf8.count <= maxTotalSize else { throw Refusal(why: "'string' is longer than \(maxTotalSize) bytes") }
            return Spec(name: name, content: .string(string))
        default:
            throw Refusal(why: "give exactly one of 'file' and 'string'")
        }
    }

    /// A name the directory can hold and a guest can compare: 1 to 55 bytes of printable
    /// ASCII (QEMU recommends plain ASCII; it only warns about names outside `opt/`).
    static func check(name: String) throws(Refusal) {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= maxNameLength else {
            throw Refusal(why: "the name \(name.quotedForMessage) is not 1 to \(maxNameLength) bytes long")
        }
        guard bytes.allSatisfy({ (0x21...0x7e).contains($0) }) else {
            throw Refusal(why: "the name \(name.quotedForMessage) is not printable ASCII without spaces")
        }
        guard !reservedNames.contains(name) else { throw Refusal(why: "the name \(name.quotedForMessage) is the machine's own") }
    }

    /// Checks a whole list: each name once, at most `limit` files of `maxTotalSize` bytes.
    static func check(names: [String], sizes: [Int], limit: Int = maxCount) throws(Refusal) {
        guard names.count <= limit else { throw Refusal(why: "\(names.count) files; at most \(limit)") }
        var seen = Set<String>()
        for name in names where !seen.insert(name).inserted { throw Refusal(why: "the name \(name.quotedForMessage) given twice") }
        var total = 0
        for size in sizes {
            guard size >= 0, size <= maxTotalSize - total else { throw Refusal(why: "more than \(maxTotalSize) bytes in all") }
            total += size
        }
    }

    /// QEMU's option syntax: items split at single commas; a doubled comma is one comma.
    private static func splitOptions(_ text: String) -> [String] {
        var items: [String] = [], current = ""
        var i = text.startIndex
        while i < text.endIndex {
            let c = text[i]
            i = text.index(after: i)
            guard c == "," else { current.append(c); continue }
            if i < text.endIndex, text[i] == "," {
                current.append(",")
                i = text.index(after: i)
            } else {
                items.append(current)
                current = ""
            }
        }
        items.append(current)
        return items
    }
}

extension FwCfgFile {
    static let blobName = "fw-cfg-files"
    static let version: UInt32 = 1
    private static let header = Array("vmm-fw-cfg-files 1\n".utf8)

    /// The snapshot's copy of the files (`Docs/SnapshotFormat.md`): the guest may be
    /// half-way through reading one, so a restore gives it these bytes, not whatever the
    /// host's file holds by then, and needs no path. `vmm-fw-cfg-files 1`, then per file
    /// `file NAME SIZE` and its bytes, each followed by a newline, then `end`.
    static func encode(_ files: [FwCfgFile]) -> [UInt8] {
        var out = header
        for f in files {
            out += Array("file \(f.name) \(f.bytes.count)\n".utf8)
            out += f.bytes
            out.append(0x0a)
        }
        return out + Array("end\n".utf8)
    }

    /// Every name, size and separator checked; the list's rules as `--fw-cfg`'s.
    static func decode(_ bytes: [UInt8], version: UInt32) throws(Refusal) -> [FwCfgFile] {
        guard version == Self.version else { throw Refusal(why: "version \(version); this vmm reads version \(Self.version)") }
        guard bytes.count <= maxTotalSize + (1 << 16), bytes.starts(with: header) else { throw Refusal(why: "not a 'vmm-fw-cfg-files 1' blob") }
        var at = header.count
        var files: [FwCfgFile] = []
        while true {
            guard let newline = bytes[at...].firstIndex(of: 0x0a), newline - at <= 100 else {
                throw Refusal(why: "the line at byte \(at) has no end or is longer than 100 bytes")
            }
            guard let line = String(validating: bytes[at..<newline], as: UTF8.self) else { throw Refusal(why: "the line at byte \(at) is not UTF-8") }
            at = newline + 1
            if line == "end" { break }
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count == 3, fields[0] == "file", let wide = UInt32(plainDecimal: fields[2]), wide <= maxTotalSize else {
                throw Refusal(why: "line \(line.quotedForMessage) is not 'file NAME SIZE'")
            }
            let name = String(fields[1]), size = Int(wide)
            try check(name: name)
            guard size < bytes.count - at, bytes[at + size] == 0x0a else { throw Refusal(why: "\(name.quotedForMessage): its \(size) bytes are cut or not followed by a newline") }
            files.append(FwCfgFile(name: name, bytes: Array(bytes[at..<(at + size)])))
            at += size + 1
            guard files.count <= maxSavedCount else { throw Refusal(why: "more than \(maxSavedCount) files") }
        }
        guard at == bytes.count else { throw Refusal(why: "bytes after 'end'") }
        try check(names: files.map(\.name), sizes: files.map(\.bytes.count), limit: maxSavedCount)
        return files
    }
}
