import Glibc
@testable import Launcher
import Testing

/// `vmm ctl`'s HTTP client against servers on a Unix socket this test makes: the socket
/// path is the user's to name, so whatever listens there is input.
@Suite("vmm ctl's HTTP client")
struct CtlClientTests {
    /// A server for one connection: reads the request, then runs `answer` on the
    /// connection in a thread of its own. The returned function waits for that thread.
    static func serve(_ answer: @escaping @Sendable (Int32) -> Void) throws -> (path: String, join: () -> Void) {
        let path = "/tmp/vmm-ctl-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        let listener = try APISocketPathTests.bindSocket(path)
        var thread = pthread_t()
        let box = Unmanaged.passRetained(Job(listener: listener, path: path, answer: answer)).toOpaque()
        try #require(pthread_create(&thread, nil, { raw in
            let job = Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue()
            let fd = accept(job.listener, nil, nil)
            close(job.listener)
            unlink(job.path)
            guard fd >= 0 else { return nil }
            var request = [UInt8](repeating: 0, count: 4096)
            _ = read(fd, &request, request.count)
            job.answer(fd)
            close(fd)
            return nil
        }, box) == 0)
        return (path, { pthread_join(thread, nil) })
    }

    final class Job: @unchecked Sendable {
        let listener: Int32, path: String, answer: @Sendable (Int32) -> Void
        init(listener: Int32, path: String, answer: @escaping @Sendable (Int32) -> Void) {
            self.listener = listener; self.path = path; self.answer = answer
        }
    }

    static func write(_ fd: Int32, _ text: String) -> Bool {
        var bytes = Array(text.utf8)
        return send(fd, &bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count
    }

    @Test("ctl snapshot and screendump send a relative path from ctl's working directory (the VMM took it from its own)")
    func relativePaths() throws {
        let cwd = try #require(getcwd(nil, 0))
        defer { free(cwd) }
        let dir = String(cString: cwd)
        #expect(try CtlCommand.absolute("snap/one") == (dir == "/" ? "" : dir) + "/snap/one")
        #expect(try CtlCommand.absolute("/abs/snap") == "/abs/snap")
    }

    @Test("an answer is split into status and body")
    func answer() throws {
        let server = try Self.serve { fd in
            _ = Self.write(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"a\": \"b\"}\n")
        }
        defer { server.join() }
        let answer = try UnixHTTPClient.send(socket: server.path, method: "GET", path: "/vm", body: nil)
        #expect(answer.status == 200 && answer.body == "{\"a\": \"b\"}\n")
    }

    /// Each byte comes before any one read's timeout; only the exchange's deadline ends it.
    @Test("a server that sends a byte now and then is given up at the deadline, not per read")
    func dribble() throws {
        let server = try Self.serve { fd in
            // 100 bytes over 2 s, or until the client hangs up; then wait for it to.
            for _ in 0..<100 {
                guard Self.write(fd, "H") else { return }
                usleep(20_000)
            }
            var byte: UInt8 = 0
            while read(fd, &byte, 1) > 0 {}
        }
        defer { server.join() }
        #expect {
            _ = try UnixHTTPClient.send(socket: server.path, method: "GET", path: "/vm", body: nil, timeout: 300)
        } throws: { error in
            guard let error = error as? CtlError else { return false }
            return error.status == .unreachable && error.message.hasPrefix("no complete answer within 300 ms (")
        }
    }

    @Test("a server's text reaches the terminal with its lines kept and its escape sequences escaped")
    func hostileText() throws {
        let forged = "{\"state\": \"Running\u{1b}[2J\u{1b}]0;pwned\u{7}\"}\r\nvmm ctl: forged\u{9b}31m"
        let info = CtlCommand.shown(HTTPAnswer(status: 200, body: forged), command: "info")
        #expect(info.stdout == #"{"state": "Running\u{1b}[2J\u{1b}]0;pwned\u{7}"}\r"# + "\n" + #"vmm ctl: forged\u{9b}31m"# + "\n")
        #expect(info.stderr == nil && info.status == .ok)
        // The screen's text, from inside the JSON: JSON's \u001b is the same escape.
        let screen = CtlCommand.shown(HTTPAnswer(status: 200, body: #"{"text": "line 1\u001b[H\nline 2\n"}"#), command: "screen")
        #expect(screen.stdout == #"line 1\u{1b}[H"# + "\nline 2\n" && screen.status == .ok)
        // A refusal: the body as it came (escaped), the status on stderr.
        let refused = CtlCommand.shown(HTTPAnswer(status: 409, body: "{\"fault_message\": \"no\u{1b}c\"}"), command: "pause")
        #expect(refused.stdout == #"{"fault_message": "no\u{1b}c"}"# + "\n")
        #expect(refused.stderr == "vmm ctl: pause: HTTP 409\n" && refused.status == .refused)
        #expect(CtlCommand.shown(HTTPAnswer(status: 503, body: ""), command: "info") == ("", "vmm ctl: info: HTTP 503\n", .serverError))
        // Plain text is untouched.
        #expect(CtlCommand.shown(HTTPAnswer(status: 200, body: "{\n  \"a\": 1\n}\n"), command: "info").stdout == "{\n  \"a\": 1\n}\n")
    }

    @Test("an answer's status and Content-Length are digits only: a sign is refused, not read", arguments: [
        ("HTTP/1.1 +200 OK\r\nContent-Length: 2\r\n\r\n{}", "not an HTTP answer: HTTP/1.1 +200 OK"),
        ("HTTP/1.1 -0 OK\r\nContent-Length: 2\r\n\r\n{}", "not an HTTP answer: HTTP/1.1 -0 OK"),
        ("HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n{}", "answer has a bad Content-Length '+1' (digits only)"),
        ("HTTP/1.1 200 OK\r\nContent-Length: -0\r\n\r\n{}", "answer has a bad Content-Length '-0' (digits only)"),
    ])
    func signedNumbers(answer: String, message: String) throws {
        #expect { _ = try UnixHTTPClient.parse(Array(answer.utf8)) } throws: { ($0 as? CtlError)?.message == message }
        // Digits are read as before.
        #expect(try UnixHTTPClient.parse(Array("HTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\n{}".utf8)).body == "{")
    }
}
