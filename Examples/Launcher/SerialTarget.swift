/// Where a guest console goes (`--serial`; `--debugcon`, where none means no device).
enum SerialTarget: Equatable {
    case stdio
    case file(String)
    case none

    init?(_ text: String) {
        switch text {
        case "stdio": self = .stdio
        case "none": self = .none
        default:
            guard text.hasPrefix("file:"), text.count > 5 else { return nil }
            self = .file(String(text.dropFirst(5)))
        }
    }

    /// `text` as the value of `flag` ("--serial", "--debugcon"), refused in one line.
    init(flag: String, _ text: String) throws(LauncherError) {
        guard let target = SerialTarget(text) else {
            throw LauncherError(.usage, "\(flag) must be stdio, none or file:PATH, not \(text.quotedForMessage)")
        }
        self = target
    }

    /// The `--serial` text that reads back as this target.
    var text: String {
        switch self {
        case .stdio: "stdio"
        case .none: "none"
        case let .file(path): "file:\(path)"
        }
    }
}
