import Glibc
import VMMKit
import VMMControl

/// `vmm ctl PATH COMMAND`: the control API's client. One HTTP/1.1 request over the Unix
/// socket (`Connection: close`), the answer's JSON body on stdout. Parsed by
/// libVMMCommandLine.so (its `CtlArguments` holds the help).
struct CtlCommand {
    var socket: String
    var command: String
    var operands: [String]

    init(_ p: ParsedCommand) throws(LauncherError) {
        guard let socket = try p.string("socket"), let action = try p.string("action") else { throw ParsedCommand.skew("ctl without socket or action") }
        self.socket = socket
        command = action
        operands = p.strings("operand")
    }

    func run() throws(LauncherError) -> Never {
        let (method, path, body) = try request()
        let answer: HTTPAnswer
        do { answer = try UnixHTTPClient.send(socket: socket, method: method, path: path, body: body) } catch {
            ExitStats.err("vmm ctl: \(socket): \(error.message.asOneLine)\n")
            Glibc.exit(error.status.rawValue)
        }
        let shown = Self.shown(answer, command: command)
        if !shown.stdout.isEmpty { print(shown.stdout, terminator: "") }
        if let line = shown.stderr { ExitStats.err(line) }
        Glibc.exit(shown.status.rawValue)
    }

    /// What `vmm ctl` prints for an answer and its exit status. Whatever listens on the
    /// socket is input: its text reaches the terminal with its lines kept and every other
    /// control character (an escape sequence that clears or retitles the terminal)
    /// written as `\u{XX}`.
    static func shown(_ answer: HTTPAnswer, command: String) -> (stdout: String, stderr: String?, status: CtlStatus) {
        // `screen` prints the screen itself, as a user reads it, not the JSON around it.
        if command == "screen", answer.status == 200, case let .object(fields)? = try? JSONValue.parse(Array(answer.body.utf8)),
           case let .string(text)? = fields["text"] {
            return (terminalText(text), nil, .ok)
        }
        var out = terminalText(answer.body)
        if !out.isEmpty && !out.hasSuffix("\n") { out += "\n" }
        guard (200..<300).contains(answer.status) else {
            return (out, "vmm ctl: \(command): HTTP \(answer.status)\n", answer.status < 500 ? .refused : .serverError)
        }
        return (out, nil, .ok)
    }

    /// `text` with its newlines kept and its other hidden scalars escaped (`asOneLine`).
    static func terminalText(_ text: String) -> String {
        // By scalars: as Characters, "\r\n" is one, and no "\n".
        text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false)
            .map { String(String.UnicodeScalarView($0)).asOneLine }.joined(separator: "\n")
    }

    /// A path as the user of `ctl` means it: a relative one from ctl's working directory.
    /// The VMM writes the file, and it took a relative path from its own directory.
    static func absolute(_ path: String) throws(LauncherError) -> String {
        guard !path.hasPrefix("/") else { return path }
        guard let cwd = getcwd(nil, 0) else {
            throw LauncherError(.usage, "ctl: \(path.quotedForMessage) is relative and the working directory is gone: \(String(cString: strerror(errno)))")
        }
        defer { free(cwd) }
        let dir = String(cString: cwd)
        return (dir == "/" ? "" : dir) + "/" + path
    }

    func request() throws(LauncherError) -> (String, String, String?) {
        switch command {
        case "snapshot": guard operands.count == 1 else { throw LauncherError(.usage, "ctl snapshot needs one directory") }
        case "screendump": guard operands.count == 1 else { throw LauncherError(.usage, "ctl screendump needs one file (the VMM writes it)") }
        case "mouse": guard operands.count >= 2 else { throw LauncherError(.usage, "ctl mouse needs DX DY [BUTTON...] (a negative number after --: ctl PATH mouse -- -5 10)") }
        case "sendkey": guard !operands.isEmpty else { throw LauncherError(.usage, "ctl sendkey needs keys (QEMU's names: sendkey ctrl-alt-delete, sendkey h i ret)") }
        case "type": guard operands.count == 1, !operands[0].isEmpty else { throw LauncherError(.usage, "ctl type needs one non-empty text") }
        default: guard operands.isEmpty else { throw LauncherError(.usage, "ctl \(command) takes no operand") }
        }
        switch command {
        case "info": return ("GET", "/vm", nil)
        case "metrics": return ("GET", "/metrics", nil)
        case "screen": return ("GET", "/vm/screen", nil)
        case "pause": return ("PATCH", "/vm", "{\"state\": \"Paused\"}")
        case "resume": return ("PATCH", "/vm", "{\"state\": \"Resumed\"}")
        case "stop": return ("PUT", "/actions", "{\"action_type\": \"Stop\"}")
        case "power-button": return ("PUT", "/actions", "{\"action_type\": \"PowerButton\"}")
        case "ctrl-alt-del": return ("PUT", "/actions", "{\"action_type\": \"SendCtrlAltDel\"}")
        case "sendkey": return ("PUT", "/vm/keys", "{\"keys\": \(FlatJSON.quote(operands.joined(separator: " ")))}")
        case "type":
            // The text as key combinations, typed by the server as sendkey's.
            let keys: [String]
            do { keys = try PS2Keys.combinations(typing: operands[0]) } catch { throw LauncherError(.usage, "ctl type: \(error.message)") }
            return ("PUT", "/vm/keys", "{\"keys\": \(FlatJSON.quote(keys.joined(separator: " ")))}")
        case "snapshot": return ("PUT", "/snapshot/create", "{\"snapshot_dir\": \(FlatJSON.quote(try Self.absolute(operands[0])))}")
        case "screendump": return ("PUT", "/vm/screendump", "{\"filename\": \(FlatJSON.quote(try Self.absolute(operands[0])))}")
        case "mouse":
            // The buttons named are held, the others released; the server checks the numbers.
            let buttons = operands.dropFirst(2).joined(separator: " ")
            return ("PUT", "/vm/mouse", "{\"dx\": \(FlatJSON.quote(operands[0])), \"dy\": \(FlatJSON.quote(operands[1])), \"buttons\": \(FlatJSON.quote(buttons))}")
        default: throw LauncherError(.usage, "ctl: unknown command \(command.quotedForMessage) (info, pause, resume, stop, power-button, ctrl-alt-del, sendkey KEYS..., type TEXT, metrics, screen, screendump FILE, mouse DX DY [BUTTON...], snapshot DIR)")
        }
    }
}

/// `vmm ctl`'s exit statuses (usage errors are 2, as for every subcommand).
enum CtlStatus: Int32, CaseIterable {
    case ok = 0            // the API answered 2xx
    case usage = 2         // bad command line
    case unreachable = 3   // no socket, connection refused, or no complete answer
    case refused = 4       // the API answered 4xx (bad request, wrong state, unknown endpoint)
    case serverError = 5   // the API answered 5xx (501: the operation is not in this build)

    var meaning: String {
        switch self {
        case .ok: "done"
        case .usage: "bad command line"
        case .unreachable: "cannot reach the API"
        case .refused: "request refused (HTTP 4xx)"
        case .serverError: "server error or not available (HTTP 5xx)"
        }
    }
}

struct HTTPAnswer { let status: Int; let body: String }

struct CtlError: Error {
    let status: CtlStatus
    let message: String
}

/// A minimal HTTP/1.1 client for one request on a Unix socket: it writes the request,
/// reads until the server closes (bounded in size and time) and splits off the body.
enum UnixHTTPClient {
    static let maxAnswerBytes = 1 << 20
    static let timeoutSeconds = 30

    /// `timeout`: for the whole exchange, not each read — a server that sends a byte now
    /// and then would otherwise hold the client for as long as it likes.
    static func send(socket path: String, method: String, path target: String, body: String?,
                     timeout: Int = timeoutSeconds * 1000) throws(CtlError) -> HTTPAnswer {
        let deadline = MonotonicClock.now() / 1_000_000 + UInt64(min(max(timeout, 0), 86_400_000))
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw CtlError(status: .unreachable, message: "socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        // connect() and the request's writes (one small request): each at most `timeout`.
        var sendTimeout = timeval(tv_sec: timeout / 1000, tv_usec: timeout % 1000 * 1000)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &sendTimeout, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_un()
        guard APISocketPath.fill(&addr, path) else { throw CtlError(status: .usage, message: "path longer than \(APISocketPath.maxBytes) bytes") }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { throw CtlError(status: .unreachable, message: "cannot connect: \(String(cString: strerror(errno)))") }

        let payload = Array((body ?? "").utf8)
        var head = "\(method) \(target) HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\nConnection: close\r\n"
        if body != nil { head += "Content-Type: application/json\r\n" }
        head += "Content-Length: \(payload.count)\r\n\r\n"
        let request = Array(head.utf8) + payload
        var sent = 0
        while sent < request.count {
            let n = request.withUnsafeBytes { write(fd, $0.baseAddress! + sent, request.count - sent) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw CtlError(status: .unreachable, message: "write: \(String(cString: strerror(errno)))") }
            sent += n
        }

        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let left = Int64(bitPattern: deadline &- MonotonicClock.now() / 1_000_000)
            var ready = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let polled = left > 0 ? poll(&ready, 1, Int32(min(left, 86_400_000))) : 0
            if polled < 0 && errno == EINTR { continue }
            guard polled > 0 else {
                throw CtlError(status: .unreachable, message: "no complete answer within \(timeout) ms (\(answer.count) bytes so far)")
            }
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw CtlError(status: .unreachable, message: "no answer: \(String(cString: strerror(errno)))") }
            if n == 0 { break }
            answer += chunk[0..<n]
            guard answer.count <= maxAnswerBytes else { throw CtlError(status: .unreachable, message: "answer larger than \(maxAnswerBytes) bytes") }
        }
        return try parse(answer)
    }

    /// Status line and body of a complete answer (Content-Length framed, as the server sends).
    static func parse(_ bytes: [UInt8]) throws(CtlError) -> HTTPAnswer {
        let separator: [UInt8] = [13, 10, 13, 10]
        guard let end = (0..<max(0, bytes.count - 3)).first(where: { Array(bytes[$0..<$0 + 4]) == separator }) else {
            throw CtlError(status: .unreachable, message: "incomplete HTTP answer (\(bytes.count) bytes)")
        }
        let head = String(decoding: bytes[..<end], as: UTF8.self)
        let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
        let statusWords = lines[0].split(separator: " ")
        // Digits only, as the launcher reads every number: Int(_:) also took "+200" and "-0".
        guard statusWords.count >= 2, statusWords[0].hasPrefix("HTTP/1."), statusWords[1].utf8.count == 3,
              let status = UInt16(plainDecimal: statusWords[1]).map(Int.init) else {
            throw CtlError(status: .unreachable, message: "not an HTTP answer: \(lines[0].prefix(80))")
        }
        var body = Array(bytes[(end + 4)...])
        for line in lines.dropFirst() {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "content-length" {
                let value = parts[1].trimmed(" ")
                guard let n = UInt64(plainDecimal: value) else {
                    throw CtlError(status: .unreachable, message: "answer has a bad Content-Length \(value.quotedForMessage) (digits only)")
                }
                guard n <= UInt64(body.count) else { throw CtlError(status: .unreachable, message: "answer body cut short (\(body.count) of \(n) bytes)") }
                body = Array(body.prefix(Int(n)))
            }
        }
        return HTTPAnswer(status: status, body: String(decoding: body, as: UTF8.self))
    }
}

private extension Substring {
    func trimmed(_ set: Character) -> Substring {
        var s = self
        while s.first == set { s = s.dropFirst() }
        while s.last == set { s = s.dropLast() }
        return s
    }
}
