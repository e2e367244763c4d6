import CVMMPlugin
import Glibc
import SystemPackage

/// A plugin shared library, opened and its descriptor validated, before any of its
/// code has run.
///
/// Libraries are opened with `RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE` and never
/// `dlclose`d: a Swift plugin cannot be unloaded safely (the runtime keeps pointers to
/// its type metadata and conformance records for the life of the process), and
/// keeping every plugin loaded makes all plugins behave the same. Opening the same
/// path again returns the same library (dlopen counts references), so one plugin can
/// serve several VMs, each with its own instance.
public struct PluginLibrary: @unchecked Sendable {
    public let path: String
    public let id: String
    public let version: String
    public let summary: String
    let entry: UnsafePointer<vmm_plugin_entry_t>

    /// The ABI version the plugin was built against, as "major.minor".
    public var abiVersion: String { "\(entry.pointee.abi_major).\(entry.pointee.abi_minor)" }

    /// The smallest descriptor a 1.x host accepts: ABI 1.0's (up to get_extension).
    static let minimumEntrySize = MemoryLayout<vmm_plugin_entry_t>.offset(of: \.get_extension)! + 8

    /// Opens `path` and validates its `vmm_plugin_entry`. Runs no plugin code except
    /// the library's own constructors.
    public static func open(_ path: String) throws(PluginError) -> PluginLibrary {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw PluginError(plugin: path, "cannot open: \(Errno.current.vmmDescription)")
        }
        guard info.st_mode & S_IFMT == S_IFREG else {
            throw PluginError(plugin: path, "not a regular file (a plugin is a shared library, .so)")
        }
        let handle: UnsafeMutableRawPointer? = pluginLoadLock.withLock {
            dlerror() // clear a stale message
            return dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE)
        }
        guard let handle else {
            let why = dlerror().map { String(cString: $0) } ?? "unknown dlopen error"
            throw PluginError(plugin: path, "not a loadable shared library: \(why)")
        }
        guard let symbol = dlsym(handle, VMM_PLUGIN_ENTRY_SYMBOL) else {
            throw PluginError(plugin: path,
                "no '\(VMM_PLUGIN_ENTRY_SYMBOL)' symbol: not a VMMKit plugin (a plugin defines "
                    + "`const vmm_plugin_entry_t vmm_plugin_entry` from vmm_plugin.h)")
        }
        let entry = UnsafePointer(symbol.assumingMemoryBound(to: vmm_plugin_entry_t.self))
        return try validate(entry, path: path)
    }

    /// Checks the descriptor in the order that is safe to read it: size and version
    /// first (a different major may lay out everything after them differently).
    static func validate(_ entry: UnsafePointer<vmm_plugin_entry_t>, path: String) throws(PluginError) -> PluginLibrary {
        let raw = UnsafeRawPointer(entry)
        let size = raw.load(as: UInt32.self)
        let major = raw.load(fromByteOffset: 4, as: UInt16.self)
        let minor = raw.load(fromByteOffset: 6, as: UInt16.self)
        let host = "\(VMM_PLUGIN_ABI_MAJOR).\(VMM_PLUGIN_ABI_MINOR)"
        guard major == VMM_PLUGIN_ABI_MAJOR else {
            throw PluginError(plugin: path,
                "built for plugin ABI \(major).\(minor), but this host implements ABI \(host): a different "
                    + "major version is incompatible; rebuild the plugin against this host's vmm_plugin.h")
        }
        guard Int(size) >= minimumEntrySize else {
            throw PluginError(plugin: path,
                "its vmm_plugin_entry is \(size) bytes, smaller than the \(minimumEntrySize) bytes of ABI 1.0 "
                    + "(struct_size must be sizeof(vmm_plugin_entry_t))")
        }
        let e = entry.pointee
        guard let idPointer = e.id, idPointer.pointee != 0 else {
            throw PluginError(plugin: path, "its vmm_plugin_entry has no id (a reverse-DNS name is required)")
        }
        let id = String(cString: idPointer)
        guard minor <= VMM_PLUGIN_ABI_MINOR else {
            throw PluginError(plugin: "'\(id)' (\(path))",
                "built for plugin ABI \(major).\(minor), newer than this host's ABI \(host): update the host, "
                    + "or rebuild the plugin against vmm_plugin.h \(host)")
        }
        guard id.contains("."), !id.contains(where: { $0 == " " || $0 == "/" }) else {
            throw PluginError(plugin: path, "id '\(id)' is not a reverse-DNS name (e.g. org.example.device)")
        }
        guard let version = e.version else {
            throw PluginError(plugin: "'\(id)' (\(path))", "its vmm_plugin_entry has no version")
        }
        guard e.`init` != nil, e.destroy != nil else {
            throw PluginError(plugin: "'\(id)' (\(path))", "its vmm_plugin_entry lacks init or destroy")
        }
        return PluginLibrary(path: path, id: id, version: String(cString: version),
                             summary: e.description.map { String(cString: $0) } ?? "", entry: entry)
    }
}

/// Serialises every [load-thread] call (dlopen, init, destroy) process-wide, as the
/// header promises plugins. Not reentrant: code running inside (a plugin's init
/// calling back into the host) never takes it again.
let pluginLoadLock = LoadLock()

final class LoadLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t> = {
        let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(m, nil)
        return m
    }()

    func withLock<T>(_ body: () throws -> T) rethrows -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body()
    }
}
