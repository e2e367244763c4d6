import Glibc

// SwiftPM links an executable target's own main (renamed <module>_main), so libFuzzer's
// main cannot be used; each target's top-level code calls runFuzzer, which enters
// libFuzzer's driver (LLVMFuzzerRunDriver, the documented entry for this case) with
// the process's arguments: every libFuzzer flag works as usual.
public typealias FuzzTarget = @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: FuzzTarget) -> Int32

nonisolated(unsafe) var currentTarget: FuzzTarget?

/// libFuzzer's own main (linked from its archive, never called here) names this symbol.
@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    currentTarget?(data, size) ?? 0
}

public func runFuzzer(_ target: FuzzTarget) -> Never {
    currentTarget = target
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, target))
}

/// The input as a buffer (libFuzzer passes NULL for an empty input).
public func fuzzInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> UnsafeBufferPointer<UInt8> {
    UnsafeBufferPointer(start: data, count: data == nil ? 0 : size)
}

/// What every error from input must be: one line, with no control character (a newline
/// would forge a log line, an escape sequence rewrite the terminal it is printed on) and
/// of a bounded length.
public func requireOneLine(_ message: String, _ context: @autoclosure () -> String = "") {
    precondition(!message.isEmpty && message.utf8.count <= 4096 && !message.unicodeScalars.contains {
        $0.value < 0x20 || (0x7f...0x9f).contains($0.value)
    }, "not one line of text: \(message.debugDescription) \(context())")
}

/// `precondition` with its message kept in the optimised build these targets are built
/// in (there a precondition's message is dropped): a crash says what broke.
public func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError(message()) }
}

/// The input read as little-endian fields, in order; past its end every read gives 0.
public final class FuzzReader {
    public let bytes: [UInt8]
    public private(set) var at = 0
    public init(_ bytes: [UInt8]) { self.bytes = bytes }
    public var done: Bool { at >= bytes.count }
    public func u8() -> UInt8 { guard at < bytes.count else { return 0 }; defer { at += 1 }; return bytes[at] }
    public func u16() -> UInt16 { UInt16(u8()) | UInt16(u8()) << 8 }
    public func u32() -> UInt32 { UInt32(u16()) | UInt32(u16()) << 16 }
    public func u64() -> UInt64 { UInt64(u32()) | UInt64(u32()) << 32 }
    /// The next `n` bytes (zeros past the end).
    public func take(_ n: Int) -> [UInt8] { (0..<n).map { _ in u8() } }
    /// What is left, consumed.
    public func rest() -> [UInt8] { defer { at = bytes.count }; return Array(bytes[min(at, bytes.count)...]) }
}
