import CVMMPlugin

/// A plugin's `vmm_plugin_entry` as data: what it says about itself, checked by the
/// same rules whether it was read from a loaded library (`PluginLibrary.open`) or from
/// the file without loading it (`PluginDescriptor.read`, for listings).
public struct PluginDescriptor: Sendable, Equatable {
    public let path: String
    public let id: String
    public let version: String
    public let summary: String
    public let abiMajor: UInt16
    public let abiMinor: UInt16

    /// "major.minor" of the ABI the plugin was built against.
    public var abiVersion: String { "\(abiMajor).\(abiMinor)" }
}

/// The descriptor's fields before validation. Fields past the header are read only
/// when the header allows it (same major, struct_size at least ABI 1.0's), so a
/// reader fills them lazily through `body`.
struct PluginEntryFields {
    struct Body {
        var id: String?
        var version: String?
        var summary: String?
        var hasInit: Bool
        var hasDestroy: Bool
    }

    var structSize: UInt32
    var abiMajor: UInt16
    var abiMinor: UInt16

    /// A plugin id's longest form: a DNS name's.
    static let maxIDBytes = 253

    /// "org.example.device": ASCII letters, digits, '.', '-' and '_', with at least one
    /// '.'. Every message about a plugin names it by its id, so an id is never text that
    /// could break a line or a terminal.
    static func isReverseDNS(_ id: String) -> Bool {
        id.utf8.count <= maxIDBytes && id.utf8.contains(UInt8(ascii: ".")) && id.utf8.allSatisfy {
            switch $0 {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: "_"): true
            default: false
            }
        }
    }

    /// The smallest descriptor a 1.x host accepts: ABI 1.0's (up to get_extension).
    static let minimumSize = MemoryLayout<vmm_plugin_entry_t>.offset(of: \.get_extension)! + 8

    /// A `vmm_plugin_entry_t`'s alignment (its pointers'), 8.
    static let alignment = MemoryLayout<vmm_plugin_entry_t>.alignment

    /// Checked before any field is read: the host reads the descriptor in place, and a
    /// symbol at an address a `vmm_plugin_entry_t` cannot have (a field of a packed
    /// struct, a function's address) trapped the host on its first load. A file's
    /// address says the same as the loaded one: a library is mapped at a page boundary.
    static func checkAligned(_ address: UInt64, path: String) throws(PluginError) {
        guard address % UInt64(alignment) != 0 else { return }
        throw PluginError(plugin: path,
            "its vmm_plugin_entry is at an address that is not a multiple of \(alignment), as a vmm_plugin_entry_t's must be "
                + "(a plugin defines `const vmm_plugin_entry_t vmm_plugin_entry`, not a function or a field of a packed struct)")
    }

    /// Checks in the order that is safe to read a descriptor: size and version first (a
    /// different major may lay out everything after them differently), then `body()`.
    func validate(path: String, body: () throws(PluginError) -> Body) throws(PluginError) -> PluginDescriptor {
        let (major, minor) = (abiMajor, abiMinor)
        let host = "\(VMM_PLUGIN_ABI_MAJOR).\(VMM_PLUGIN_ABI_MINOR)"
        guard major == VMM_PLUGIN_ABI_MAJOR else {
            throw PluginError(plugin: path,
                "built for plugin ABI \(major).\(minor), but this host implements ABI \(host): a different "
                    + "major version is incompatible; rebuild the plugin against this host's vmm_plugin.h")
        }
        guard Int(structSize) >= Self.minimumSize else {
            throw PluginError(plugin: path,
                "its vmm_plugin_entry is \(structSize) bytes, smaller than the \(Self.minimumSize) bytes of ABI 1.0 "
                    + "(struct_size must be sizeof(vmm_plugin_entry_t))")
        }
        let e = try body()
        guard let id = e.id, !id.isEmpty else {
            throw PluginError(plugin: path, "its vmm_plugin_entry has no id (a reverse-DNS name is required)")
        }
        guard minor <= VMM_PLUGIN_ABI_MINOR else {
            throw PluginError(plugin: "\(id.quotedForMessage) (\(path))",
                "built for plugin ABI \(major).\(minor), newer than this host's ABI \(host): update the host, "
                    + "or rebuild the plugin against vmm_plugin.h \(host)")
        }
        guard Self.isReverseDNS(id) else {
            throw PluginError(plugin: path, "id \(id.quotedForMessage) is not a reverse-DNS name of at most "
                + "\(Self.maxIDBytes) bytes (letters, digits, '.', '-', '_', with a '.'; e.g. org.example.device)")
        }
        guard let version = e.version else {
            throw PluginError(plugin: "'\(id)' (\(path))", "its vmm_plugin_entry has no version")
        }
        guard e.hasInit, e.hasDestroy else {
            throw PluginError(plugin: "'\(id)' (\(path))", "its vmm_plugin_entry lacks init or destroy")
        }
        return PluginDescriptor(path: path, id: id, version: version, summary: e.summary ?? "",
                                abiMajor: major, abiMinor: minor)
    }
}
