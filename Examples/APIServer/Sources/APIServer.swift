import CVMMAPIServer
import Glibc
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// libVMMAPIServer.so: HTTP/1.1 on a Unix socket, served by Hummingbird on one event-loop
/// thread of its own, every request handed to the caller's `handle` (vmm_api_server.h).
/// The launcher dlopens it only for `--api-sock`, so SwiftNIO, Hummingbird and the
/// Foundation they bring cost nothing to a run without the flag.
final class APIServer: @unchecked Sendable {
    private let group: MultiThreadedEventLoopGroup
    /// `handle` runs here, a thread for each connection served: a handler that blocks (a
    /// snapshot being written) holds its own thread, never the Swift concurrency pool's
    /// (as many as the cores: two blocked snapshots once kept a stop from being answered
    /// until both were written).
    private let handlers: NIOThreadPool
    private let services: ServiceGroup
    private let finished = Latch()
    private let ready = Latch()
    private(set) var failure: String?

    init(path: String, ops: vmm_api_ops_t) {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let connections = Self.connectionLimit()
        handlers = NIOThreadPool(numberOfThreads: connections)
        handlers.start()
        let router = Router()
        router.add(middleware: Forward(ops: ops, handlers: handlers))
        var quiet = Logger(label: "vmm-api") { StreamLogHandler.standardError(label: $0) }
        quiet.logLevel = .warning
        let ready = self.ready
        let limits = ApplicationConfiguration(address: .unixDomainSocket(path: path), serverName: "vmm",
                                              availableConnectionsDelegate: MaximumAvailableConnections(connections))
        let maxBody = ops.max_body_bytes
        let http = HTTP1Channel.Configuration(additionalChannelHandlers: [RequestDeadline(limit: .seconds(Self.transferSeconds)),
                                                                          RequestLimits(maxBodyBytes: maxBody)],
                                              idleTimeout: .seconds(Self.idleSeconds))
        let app = Application(router: router, server: .http1(configuration: http),
                              configuration: limits, onServerRunning: { _ in ready.open() }, eventLoopGroupProvider: .shared(group),
                              logger: quiet)
        services = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: quiet))
        Task.detached { [self] in
            do { try await services.run() } catch let error as IOError { failure = Self.describe(error) } catch { failure = "\(error)" }
            ready.open()
            finished.open()
        }
        ready.wait()
    }

    /// "bind: No such file or directory (errno 2)": NIO's own text names the call with its
    /// Swift argument labels and has an unbalanced parenthesis.
    static func describe(_ error: IOError) -> String {
        let call = error.description.prefix { $0.isLetter || $0.isNumber || $0 == "_" }
        let reason = "\(String(cString: strerror(error.errnoCode))) (errno \(error.errnoCode))"
        return call.isEmpty ? reason : "\(call): \(reason)"
    }

    /// A connection with no request in flight for this long is closed, so idle clients
    /// cannot hold the connection slots for good.
    static let idleSeconds: Int64 = 5
    /// A request must arrive whole, and its answer be taken whole, within this long of
    /// its head (`RequestDeadline`), so slow clients cannot hold the slots either.
    static let transferSeconds: Int64 = 5
    /// Connections served at once; more wait in the socket's backlog, unaccepted.
    static let maxConnections = 16
    /// Descriptors the server never takes from the rest of the process.
    static let fdReserve = 16

    /// `maxConnections`, or fewer where RLIMIT_NOFILE leaves less room. Out of
    /// descriptors, the process dies: libdispatch (the concurrency runtime's threads)
    /// aborts with SIGILL when it cannot open /proc/<tid>/stat, and the VM's own files,
    /// a snapshot's among them, would fail to open.
    static func connectionLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max else { return maxConnections }
        var open = 0
        if let dir = opendir("/proc/self/fd") {
            while readdir(dir) != nil { open += 1 }
            closedir(dir)
        }
        let room = Int(clamping: limit.rlim_cur) - open - fdReserve
        return max(1, min(maxConnections, room))
    }

    /// Stops serving and waits for the server to end.
    func stop() {
        let services = self.services
        Task.detached { await services.triggerGracefulShutdown() }
        finished.wait()
        // The event-loop thread is left to the process's exit, which follows: shutting the
        // group down here races the last channel close NIO schedules on it (NIO then prints
        // "Cannot schedule tasks on an EventLoop that has already shut down").
    }
}

/// Hands every request to the caller and never calls the router's own routes (there are
/// none): unknown paths and methods are the caller's to answer.
private struct Forward: RouterMiddleware, @unchecked Sendable {
    typealias Context = BasicRequestContext
    let ops: vmm_api_ops_t
    let handlers: NIOThreadPool

    /// The caller's answer, carried back from the handler thread (its pointers stay valid
    /// until `release`).
    struct Answer: @unchecked Sendable { let raw: vmm_api_answer_t }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var request = request
        let body: [UInt8]?
        do {
            // A body declared too large is not waited for: answered 413 from the head, and
            // the connection closed after it (`RequestLimits`).
            if RequestLimits.declaresTooLarge(request.headers, limit: ops.max_body_bytes) { throw NIOTooManyBytesError(maxBytes: ops.max_body_bytes) }
            body = Array(buffer: try await request.collectBody(upTo: ops.max_body_bytes))
        } catch is NIOTooManyBytesError {
            body = nil // the caller answers 413
        } catch {
            // A body the HTTP layer could not read (a bad chunk size, cut off): a bare 400,
            // as its other refusals of a malformed request. Every failure read as "too
            // large" once, a 413 for a 20-byte body.
            throw HTTPError(.badRequest)
        }
        let method = request.method.rawValue, path = request.uri.path
        let answer = try await handlers.runIfActive { [self] in
            Answer(raw: method.withCString { m in
                path.withCString { p in
                    if let body {
                        return body.withUnsafeBufferPointer { ops.handle(ops.ctx, m, p, $0.baseAddress, $0.count) }
                    }
                    return ops.handle(ops.ctx, m, p, nil, Int.max)
                }
            })
        }.raw
        var headers = HTTPFields()
        var buffer = ByteBuffer()
        if let bytes = answer.body, answer.body_len > 0 {
            headers[.contentType] = "application/json"
            buffer.writeBytes(UnsafeRawBufferPointer(start: bytes, count: answer.body_len))
        }
        if let allow = answer.allow { headers[.allow] = String(cString: allow) }
        ops.release(ops.ctx, answer)
        return Response(status: .init(code: Int(answer.status)), headers: headers, body: .init(byteBuffer: buffer))
    }
}

/// A one-shot gate between the server's task and the caller's thread.
final class Latch: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var isOpen = false

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(cond, nil)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        cond.deallocate()
        mutex.deallocate()
    }

    func open() {
        pthread_mutex_lock(mutex)
        isOpen = true
        pthread_cond_broadcast(cond)
        pthread_mutex_unlock(mutex)
    }

    func wait() {
        pthread_mutex_lock(mutex)
        while !isOpen { pthread_cond_wait(cond, mutex) }
        pthread_mutex_unlock(mutex)
    }
}

@_cdecl("vmm_api_server_start")
public func vmmAPIServerStart(_ path: UnsafePointer<CChar>?, _ ops: UnsafePointer<vmm_api_ops_t>?,
                              _ error: UnsafeMutablePointer<CChar>?, _ errorSize: Int) -> UnsafeMutableRawPointer? {
    func fail(_ message: String) -> UnsafeMutableRawPointer? {
        if let error, errorSize > 0 {
            let bytes = Array(message.utf8.prefix(errorSize - 1))
            for (i, b) in bytes.enumerated() { error[i] = CChar(bitPattern: b) }
            error[bytes.count] = 0
        }
        return nil
    }
    guard let path, let ops else { return fail("no socket path or no operations") }
    guard ops.pointee.version == VMM_API_SERVER_VERSION else {
        return fail("operations of version \(ops.pointee.version), this library serves version \(VMM_API_SERVER_VERSION)")
    }
    guard ops.pointee.handle != nil, ops.pointee.release != nil else { return fail("handle and release are required") }
    let server = APIServer(path: String(cString: path), ops: ops.pointee)
    if let failure = server.failure {
        server.stop()
        return fail(failure)
    }
    return Unmanaged.passRetained(server).toOpaque()
}

@_cdecl("vmm_api_server_stop")
public func vmmAPIServerStop(_ server: UnsafeMutableRawPointer?) {
    guard let server else { return }
    Unmanaged<APIServer>.fromOpaque(server).takeRetainedValue().stop()
}
