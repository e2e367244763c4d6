/// Why an image could not be loaded: one line naming the file and the problem.
///
/// `kind` tells a launcher how to report it: `.image` for a bad or unreadable image
/// (missing, truncated, a segment outside RAM), `.request` for a request that cannot be
/// honoured whatever the image (an entry outside a flat image, a command line too long).
public struct LoaderError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable { case image, request }
    /// The `ImageRequest` fields a request error is about, so that a launcher can name
    /// where each came from (a flag or a config file).
    public enum Field: String, Sendable, Equatable { case loadAddress, entry, mode, append, initrd }
    public let kind: Kind
    public let message: String
    public let fields: Set<Field>

    public init(_ kind: Kind, _ message: String, fields: Set<Field> = []) {
        self.kind = kind
        self.message = message
        self.fields = fields
    }

    public var description: String { message }
}

func hex<T: BinaryInteger>(_ value: T) -> String { "0x" + String(value, radix: 16) }

func describeSize(_ bytes: UInt64) -> String {
    if bytes % (1 << 30) == 0 { return "\(bytes >> 30) GiB" }
    if bytes % (1 << 20) == 0 { return "\(bytes >> 20) MiB" }
    return "\(bytes >> 10) KiB"
}
