/// Plugins hand the host pointers to structs of theirs (handler descriptors, extension
/// tables, async-PF events) that the host reads in place. Each is checked to be aligned
/// as its type must be before a field is read, and refused with a message when it is
/// not: an unaligned raw load traps the whole process, and a typed one is undefined.
/// (The entry itself: `PluginEntryFields.checkAligned`, which also serves file reads.)
///
/// Scalars a service writes or reads through a plugin's pointer (get_reg's value, every
/// error_out, fd_out, thread_out, events_out, message_out, route_msrs' array) are taken
/// at any alignment instead, a byte copy each: C hands a packed struct's field there
/// legitimately, and refusing would turn a working call into an error path.
enum PluginPointer {
    static func isAligned<T>(_ pointer: UnsafeRawPointer, as _: T.Type) -> Bool {
        UInt(bitPattern: pointer) % UInt(MemoryLayout<T>.alignment) == 0
    }

    /// `out.pointee = value`, defined whatever `out`'s alignment.
    static func store<T: BitwiseCopyable>(_ value: T, at out: UnsafeMutablePointer<T>) {
        UnsafeMutableRawPointer(out).storeBytes(of: value, as: T.self)
    }

    /// `array[index]`, defined whatever `array`'s alignment.
    static func load<T: BitwiseCopyable>(_ array: UnsafePointer<T>, at index: Int) -> T {
        UnsafeRawPointer(array).loadUnaligned(fromByteOffset: index * MemoryLayout<T>.stride, as: T.self)
    }
}
