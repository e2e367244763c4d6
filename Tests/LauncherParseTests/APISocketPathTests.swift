import Glibc
@testable import Launcher
import Testing

/// `--api-sock PATH` at exit: the socket file is removed only if it is still the one
/// this process bound.
@Suite("the API socket's removal at exit")
struct APISocketPathTests {
    /// A socket bound at `path`, listening; its fd.
    static func bindSocket(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        try #require(fd >= 0)
        var addr = sockaddr_un()
        try #require(APISocketPath.fill(&addr, path))
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        try #require(bound == 0 && listen(fd, 1) == 0)
        return fd
    }

    @Test("a socket another process bound on the path since is left in place; this process's own is removed")
    func removesOnlyItsOwn() throws {
        let path = "/tmp/vmm-sockid-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).sock"
        defer { unlink(path) }
        let first = try Self.bindSocket(path)
        defer { close(first) }
        let ours = try #require(APISocketPath.identity(path))
        // Our server stopped and took its file away; another server bound the path.
        unlink(path)
        #expect(APISocketPath.identity(path) == nil)
        let second = try Self.bindSocket(path)
        defer { close(second) }
        let theirs = try #require(APISocketPath.identity(path))
        #expect(theirs != ours)

        APISocketPath.remove(path, boundAs: ours)
        #expect(APISocketPath.identity(path) == theirs, "the other server's socket was removed")
        #expect(APISocketPath.answers(path))
        APISocketPath.remove(path, boundAs: nil)
        #expect(APISocketPath.identity(path) == theirs)
        APISocketPath.remove(path, boundAs: theirs)
        #expect(access(path, F_OK) != 0)
    }

    @Test("a file that is not a socket has no identity, so it is never removed")
    func notASocket() throws {
        let path = "/tmp/vmm-sockid-\(getpid())-plain"
        let fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0o600)
        try #require(fd >= 0)
        close(fd)
        defer { unlink(path) }
        #expect(APISocketPath.identity(path) == nil)
    }
}
