import CVMMPlugin

extension PluginDescriptor {
    /// Reads and checks the `vmm_plugin_entry` of the plugin file at `path` without
    /// loading it: no constructor, no `init`, nothing of the file runs. The symbol is
    /// found in the ELF dynamic symbol table as `dlsym` would find it, the descriptor
    /// and its strings are read from the file, with the relocations the loader would
    /// apply, every offset checked (the file is untrusted). The same checks as
    /// `PluginHost.load` apply, with the same messages; whether the library's own
    /// dependencies resolve is only known by loading it.
    public static func read(_ path: String) throws(PluginError) -> PluginDescriptor {
        let elf: PluginELFFile
        do { elf = try PluginELFFile(path: path) } catch {
            if error.message.hasPrefix("cannot open") || error.message.hasPrefix("not a regular file") {
                throw PluginError(plugin: path, error.message)
            }
            throw PluginError(plugin: path, "not a loadable shared library: \(error.message)")
        }
        do {
            guard let entry = try elf.exportedSymbol(VMM_PLUGIN_ENTRY_SYMBOL) else {
                throw PluginError(plugin: path,
                    "no '\(VMM_PLUGIN_ENTRY_SYMBOL)' symbol: not a VMMKit plugin (a plugin defines "
                        + "`const vmm_plugin_entry_t vmm_plugin_entry` from vmm_plugin.h)")
            }
            return try fields(of: elf, at: entry, path: path)
        } catch let error as PluginError {
            throw error
        } catch let error as PluginELFFile.Malformed {
            throw PluginError(plugin: path, "malformed plugin file: \(error.message)")
        } catch {
            throw PluginError(plugin: path, "\(error)")
        }
    }

    private static func fields(of elf: PluginELFFile, at entry: UInt64, path: String) throws -> PluginDescriptor {
        typealias E = vmm_plugin_entry_t
        func at(_ field: PartialKeyPath<E>) -> UInt64 { entry &+ UInt64(MemoryLayout<E>.offset(of: field)!) }
        func text(_ field: PartialKeyPath<E>, _ name: String) throws(PluginELFFile.Malformed) -> String? {
            switch try elf.pointer(at: at(field), what: "vmm_plugin_entry.\(name)") {
            case .null: return nil
            case let .address(a): return try elf.string(at: a, what: "vmm_plugin_entry.\(name)")
            case .external: throw .init("vmm_plugin_entry.\(name) points into another library")
            }
        }
        func present(_ field: PartialKeyPath<E>, _ name: String) throws(PluginELFFile.Malformed) -> Bool {
            try elf.pointer(at: at(field), what: "vmm_plugin_entry.\(name)") != .null
        }
        try PluginEntryFields.checkAligned(entry, path: path)
        let h = try elf.data(entry, 8, what: "vmm_plugin_entry")
        let header = PluginEntryFields(structSize: UInt32(h[0]) | UInt32(h[1]) << 8 | UInt32(h[2]) << 16 | UInt32(h[3]) << 24,
                                       abiMajor: UInt16(h[4]) | UInt16(h[5]) << 8, abiMinor: UInt16(h[6]) | UInt16(h[7]) << 8)
        return try header.validate(path: path) { () throws(PluginError) -> PluginEntryFields.Body in
            do throws(PluginELFFile.Malformed) {
                return .init(id: try text(\E.id, "id"), version: try text(\E.version, "version"),
                             summary: try text(\E.description, "description"),
                             hasInit: try present(\E.`init`, "init"), hasDestroy: try present(\E.destroy, "destroy"))
            } catch {
                throw PluginError(plugin: path, "malformed plugin file: \(error.message)")
            }
        }
    }
}
