import Glibc
import Hummingbird
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import VMMControl

/// `vmm run --api-sock PATH`: the control API (`Docs/api/vmm-api.yaml`) over HTTP/1.1 on
/// a Unix socket, served by Hummingbird on one event-loop thread of its own. Nothing of
/// it exists unless the flag is given. Routes map onto `ControlAPI`; every error, the
/// router's own 404/405 included, is answered as `{"fault_message": "..."}`.
final class APIServer: @unchecked Sendable {
    let path: String
    private let group: MultiThreadedEventLoopGroup
    private let services: ServiceGroup
    private let finished = Latch()
    private let ready = Latch()
    private var failure: String?

    /// Binds the socket and returns once the server listens (or throws why it cannot).
    static func start(path: String, controller: VMController, log: Logger) throws(LauncherError) -> APIServer {
        try APISocketPath.prepare(path)
        let server = APIServer(path: path, api: ControlAPI(controller), log: log)
        server.ready.wait()
        if let failure = server.failure {
            server.stop()
            throw LauncherError(.host, "--api-sock \(path): cannot serve: \(failure)")
        }
        return server
    }

    private init(path: String, api: ControlAPI, log: Logger) {
        self.path = path
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let router = Router()
        router.add(middleware: FaultMiddleware())
        router.get("/vm") { _, _ in Self.response(api.info()) }
        router.patch("/vm") { request, _ in Self.response(await Self.withBody(request) { api.setState($0) }) }
        router.put("/actions") { request, _ in Self.response(await Self.withBody(request) { api.action($0) }) }
        router.put("/snapshot/create") { request, _ in Self.response(await Self.withBody(request) { api.snapshot($0) }) }
        router.get("/metrics") { _, _ in Self.response(api.metrics()) }
        var quiet = log
        quiet.logLevel = max(log.logLevel, .warning)
        let ready = self.ready
        let app = Application(router: router, configuration: .init(address: .unixDomainSocket(path: path), serverName: "vmm"),
                              onServerRunning: { _ in ready.open() }, eventLoopGroupProvider: .shared(group), logger: quiet)
        services = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [], logger: quiet))
        Task.detached { [self] in
            do { try await services.run() } catch { failure = "\(error)" }
            ready.open()
            finished.open()
        }
    }

    /// Stops serving, waits for the server to end, removes the socket.
    func stop() {
        let services = self.services
        Task.detached { await services.triggerGracefulShutdown() }
        finished.wait()
        // The event-loop thread is left to the process's exit, which follows: shutting the
        // group down here races the last channel close NIO schedules on it (NIO then prints
        // "Cannot schedule tasks on an EventLoop that has already shut down").
        APISocketPath.remove(path)
    }

    private static func withBody(_ request: Request, _ op: ([UInt8]) -> ControlAPI.Answer) async -> ControlAPI.Answer {
        var request = request
        guard let body = try? await request.collectBody(upTo: ControlAPI.maxBodyBytes) else { return ControlAPI.tooLarge() }
        return op(Array(buffer: body))
    }

    private static func response(_ answer: ControlAPI.Answer) -> Response {
        var headers = HTTPFields()
        if !answer.body.isEmpty { headers[.contentType] = "application/json" }
        return Response(status: .init(code: answer.status), headers: headers,
                        body: answer.body.isEmpty ? .init() : .init(byteBuffer: ByteBuffer(string: answer.body)))
    }
}

/// Turns the router's errors (unknown path, wrong method) into fault JSON.
private struct FaultMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext
    static let known: [String: String] = ["/vm": "GET, PATCH", "/actions": "PUT", "/snapshot/create": "PUT", "/metrics": "GET"]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError {
            var headers = HTTPFields()
            headers[.contentType] = "application/json"
            let path = request.uri.path
            if error.status == .notFound, let allowed = Self.known[path] {
                headers[.allow] = allowed
                return Response(status: .methodNotAllowed, headers: headers,
                                body: .init(byteBuffer: ByteBuffer(string: FlatJSON.fault("\(request.method) is not allowed on \(path) (allowed: \(allowed))"))))
            }
            let message = error.status == .notFound ? "no such endpoint: \(request.method) \(path)" : (error.body ?? error.status.reasonPhrase)
            return Response(status: error.status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: FlatJSON.fault(message))))
        }
    }
}

/// A one-shot gate between the server's task and the launcher's thread.
final class Latch: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()
    private var isOpen = false

    init() {
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&cond, nil)
    }

    func open() {
        pthread_mutex_lock(&mutex)
        isOpen = true
        pthread_cond_broadcast(&cond)
        pthread_mutex_unlock(&mutex)
    }

    func wait() {
        pthread_mutex_lock(&mutex)
        while !isOpen { pthread_cond_wait(&cond, &mutex) }
        pthread_mutex_unlock(&mutex)
    }
}
