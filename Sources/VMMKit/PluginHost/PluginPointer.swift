/// Plugins hand the host pointers to structs of theirs (handler descriptors, extension
/// tables, async-PF events) that the host reads in place. Each is checked to be aligned
/// as its type must be before a field is read, and refused with a message when it is
/// not: an unaligned raw load traps the whole process, and a typed one is undefined.
/// (The entry itself: `PluginEntryFields.checkAligned`, which also serves file reads.)
enum PluginPointer {
    static func isAligned<T>(_ pointer: UnsafeRawPointer, as _: T.Type) -> Bool {
        UInt(bitPattern: pointer) % UInt(MemoryLayout<T>.alignment) == 0
    }
}
