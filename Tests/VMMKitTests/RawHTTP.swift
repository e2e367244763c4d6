import Foundation

/// One raw HTTP exchange on a Unix socket: (status, body), for requests `vmm ctl` never sends.
enum RawHTTP {
    /// A stream socket connected to `path`, or nil.
    static func connect(_ path: String) -> Int32? {
        // Close-on-exec: a vmm another test spawns meanwhile must not inherit it (one run
        // under `ulimit -n 48` counts its descriptors).
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue | SOCK_CLOEXEC.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard rc == 0 else { close(fd); return nil }
        return fd
    }

    /// What of `bytes` the socket takes without waiting (MSG_DONTWAIT; no SIGPIPE).
    static func sendNow(_ fd: Int32, _ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
    }

    static func send(_ path: String, _ request: String) throws -> (Int, String) {
        let text = exchange(path, Array(request.utf8))
        guard let split = text.range(of: "\r\n\r\n") else { return (-1, text) }
        let status = Int(text.split(separator: " ").dropFirst().first ?? "") ?? -1
        return (status, String(text[split.upperBound...]))
    }

    /// Sends `request` (as much of it as the server takes before it closes: no SIGPIPE),
    /// then reads every answer until the server closes the connection (an end of file, or a
    /// reset once what it wrote is read); "connect failed" when nothing listens.
    static func exchange(_ path: String, _ request: [UInt8]) -> String {
        guard let fd = connect(path) else { return "connect failed" }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 30, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var sent = 0
        while sent < request.count {
            let n = request.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            sent += n
        }
        var answer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while answer.count < 1 << 20 {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            answer += chunk[0..<n]
        }
        return String(decoding: answer, as: UTF8.self)
    }
}
