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

    /// Checks the loaded descriptor (`PluginEntryFields.validate`): its address, then the
    /// header, the rest of the struct only when the header allows reading it.
    static func validate(_ entry: UnsafePointer<vmm_plugin_entry_t>, path: String) throws(PluginError) -> PluginLibrary {
        try PluginEntryFields.checkAligned(UInt64(UInt(bitPattern: entry)), path: path)
        let raw = UnsafeRawPointer(entry)
        let header = PluginEntryFields(structSize: raw.load(as: UInt32.self),
                                       abiMajor: raw.load(fromByteOffset: 4, as: UInt16.self),
                                       abiMinor: raw.load(fromByteOffset: 6, as: UInt16.self))
        let d = try header.validate(path: path) {
            let e = entry.pointee
            return .init(id: e.id.map(PluginText.read), version: e.version.map(PluginText.read),
                         summary: e.description.map(PluginText.read), hasInit: e.`init` != nil,
                         hasDestroy: e.destroy != nil)
        }
        return PluginLibrary(path: path, id: d.id, version: d.version, summary: d.summary, entry: entry)
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
