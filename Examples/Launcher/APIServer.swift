import CVMMAPIServer
import Glibc
import Synchronization
import VMMControl
import VMMKit

/// `vmm run --api-sock PATH`: the control API (`Docs/api/vmm-api.yaml`) over HTTP/1.1 on
/// a Unix socket. The HTTP transport is libVMMAPIServer.so (Examples/APIServer, SwiftNIO
/// and Hummingbird), loaded from beside the `vmm` executable only when the flag is given,
/// so a run without it maps none of that code nor the Foundation it brings. The library
/// hands each request here; `route` maps it onto `ControlAPI`, and every error, unknown
/// paths and methods included, is answered as `{"fault_message": "..."}`.
final class APIServer: @unchecked Sendable {
    let path: String
    /// The socket file as bound, the one `stop` removes (never another process's).
    private let bound: APISocketPath.Identity?
    private let routes: Routes
    private let library: UnsafeMutableRawPointer
    private let server: UnsafeMutableRawPointer
    private let stopServer: vmm_api_server_stop_fn

    /// Binds the socket and returns once the server listens (or throws why it cannot).
    static func start(path: String, controller: VMController, refuse: (String) -> LauncherError) throws(LauncherError) -> APIServer {
        try APISocketPath.prepare(path, refuse: refuse)
        let file = libraryPath()
        guard let library = dlopen(file, RTLD_NOW | RTLD_LOCAL) else {
            throw LauncherError(.host, "--api-sock \(path): cannot load the API server \(file): \(String(cString: dlerror()))"
                + " (built with the package: swift build --product VMMAPIServer)")
        }
        guard let start = dlsym(library, VMM_API_SERVER_START), let stop = dlsym(library, VMM_API_SERVER_STOP) else {
            dlclose(library)
            throw LauncherError(.host, "--api-sock \(path): \(file) lacks \(VMM_API_SERVER_START)/\(VMM_API_SERVER_STOP)")
        }
        let routes = Routes(ControlAPI(controller))
        // Retained for the process's life: the library is never unloaded, and a request can
        // reach `handle` after `stop` gave up waiting for its client (it answers 503 then).
        var ops = vmm_api_ops_t(version: UInt32(VMM_API_SERVER_VERSION), ctx: Unmanaged.passRetained(routes).toOpaque(),
                                max_body_bytes: ControlAPI.maxBodyBytes, handle: Routes.handle, release: Routes.release)
        var error = [CChar](repeating: 0, count: 512)
        let startServer = unsafeBitCast(start, to: vmm_api_server_start_fn.self)
        // The socket is the VM's controls (stop it, snapshot it into any directory this
        // user can write): its owner's alone whatever the umask, which a group-writable
        // 002 would have passed on. Set around the bind, not chmod'ed after it, so no
        // connection can be made in between.
        let umaskBefore = umask(0o077)
        let server = error.withUnsafeMutableBufferPointer { startServer(path, &ops, $0.baseAddress, $0.count) }
        umask(umaskBefore)
        guard let server else {
            throw LauncherError(.host, "--api-sock \(path): cannot serve: \(String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))")
        }
        return APIServer(path: path, bound: APISocketPath.identity(path), routes: routes, library: library, server: server,
                         stop: unsafeBitCast(stop, to: vmm_api_server_stop_fn.self))
    }

    private init(path: String, bound: APISocketPath.Identity?, routes: Routes, library: UnsafeMutableRawPointer,
                 server: UnsafeMutableRawPointer, stop: vmm_api_server_stop_fn) {
        self.path = path
        self.bound = bound
        self.routes = routes
        self.library = library
        self.server = server
        self.stopServer = stop
    }

    /// Answers requests from now on: called once the vCPU threads run. The socket is
    /// bound earlier (so a bad path fails before the guest starts), and a request that
    /// arrives in between waits here rather than seeing vCPUs not yet started as stopped.
    func open() { routes.gate.open() }

    /// Stops serving, waits for the server to end, removes the socket. The library stays
    /// mapped: its event-loop thread is left to the process's exit, which follows.
    ///
    /// The server's graceful shutdown waits for every open request, and one whose client
    /// sent a header and part of a body never ends: the run's end waited for that client
    /// forever. So the wait lasts while a request is being answered here (a snapshot
    /// being written) and `lingerSeconds` after, then the process goes on without it.
    /// From the start of `stop` every new request is answered 503 without reaching the
    /// VM, which the run then closes: one whose body arrived after the linger reached the
    /// controller of a closing VM, and the freed routes (a crash at exit).
    func stop() {
        routes.closed.store(true, ordering: .sequentiallyConsistent)
        routes.gate.open() // a request still waiting for the start is answered, not stuck
        let done = Latch()
        let (stopServer, server) = (self.stopServer, self.server)
        if (try? HostThread.start("api-stop", detached: true) { stopServer(server); done.open() }) != nil {
            var idleSince = MonotonicClock.now()
            while !done.wait(seconds: 0.02) {
                if routes.answering.load(ordering: .sequentiallyConsistent) > 0 { idleSince = MonotonicClock.now(); continue }
                if MonotonicClock.now() &- idleSince > UInt64(Self.lingerSeconds * 1e9) { break }
            }
        } else {
            stopServer(server)
        }
        APISocketPath.remove(path, boundAs: bound)
    }

    static let lingerSeconds = 1.0

    /// libVMMAPIServer.so in the directory of the running `vmm`.
    static func libraryPath() -> String { ExecutableDirectory.path(of: "libVMMAPIServer.so") }
}

/// Which request goes to which `ControlAPI` operation (the OpenAPI document's paths).
final class Routes: @unchecked Sendable {
    let api: ControlAPI
    /// Holds requests until the VM's vCPU threads have started.
    let gate = Latch()
    /// Requests being answered now (`APIServer.stop` waits for these, not for clients).
    let answering = Atomic<Int>(0)
    /// Set when `APIServer.stop` begins: requests from then on are answered 503. Read
    /// after `answering` counts the request, so `stop` either waits for it or it sees this.
    let closed = Atomic<Bool>(false)
    init(_ api: ControlAPI) { self.api = api }

    /// The methods each path allows, for 405 answers.
    static let allowed: [String: String] = ["/vm": "GET, PATCH", "/actions": "PUT", "/snapshot/create": "PUT", "/metrics": "GET", "/vm/screen": "GET",
                                                  "/vm/keys": "PUT", "/vm/screendump": "PUT", "/vm/mouse": "PUT"]

    /// `allowed` as C strings for the Allow header, made once and kept for the process.
    nonisolated(unsafe) static let allowedC: [String: UnsafePointer<CChar>?] =
        allowed.mapValues { UnsafePointer(strdup($0)) }

    /// `body` nil: larger than `ControlAPI.maxBodyBytes`, not read.
    func route(method: String, path: String, body: [UInt8]?) -> ControlAPI.Answer {
        guard let body else { return ControlAPI.tooLarge() }
        switch (method, path) {
        case ("GET", "/vm"): return api.info()
        case ("PATCH", "/vm"): return api.setState(body)
        case ("PUT", "/actions"): return api.action(body)
        case ("PUT", "/snapshot/create"): return api.snapshot(body)
        case ("GET", "/metrics"): return api.metrics()
        case ("GET", "/vm/screen"): return api.screen()
        case ("PUT", "/vm/keys"): return api.keys(body)
        case ("PUT", "/vm/screendump"): return api.screendump(body)
        case ("PUT", "/vm/mouse"): return api.mouse(body)
        default:
            if let allowed = Self.allowed[path] {
                return ControlAPI.Answer(status: 405, body: FlatJSON.fault("\(method) is not allowed on \(path) (allowed: \(allowed))"))
            }
            return ControlAPI.Answer(status: 404, body: FlatJSON.fault("no such endpoint: \(method) \(path)"))
        }
    }

    static let handle: @convention(c) (UnsafeMutableRawPointer?, UnsafePointer<CChar>?, UnsafePointer<CChar>?,
                                       UnsafePointer<UInt8>?, Int) -> vmm_api_answer_t = { ctx, method, path, body, length in
        let routes = Unmanaged<Routes>.fromOpaque(ctx!).takeUnretainedValue()
        routes.answering.add(1, ordering: .sequentiallyConsistent)
        defer { routes.answering.subtract(1, ordering: .releasing) }
        routes.gate.wait()
        let bytes: [UInt8]? = length == Int.max ? nil : (length == 0 ? [] : Array(UnsafeBufferPointer(start: body, count: length)))
        let answer = routes.closed.load(ordering: .sequentiallyConsistent) ? Routes.stopping
            : routes.route(method: method.map { String(cString: $0) } ?? "", path: path.map { String(cString: $0) } ?? "", body: bytes)
        // The methods a 405 names; the strings are static (Routes.allowedC), never freed.
        let allow = answer.status == 405 ? Routes.allowedC[path.map { String(cString: $0) } ?? ""] ?? nil : nil
        guard !answer.body.isEmpty, let copy = strdup(answer.body) else {
            return vmm_api_answer_t(status: Int32(answer.status), body: nil, body_len: 0, allow: allow)
        }
        return vmm_api_answer_t(status: Int32(answer.status), body: copy, body_len: strlen(copy), allow: allow)
    }

    /// The answer once the VMM is stopping: the VM is being closed, nothing reaches it.
    static let stopping = ControlAPI.Answer(status: 503, body: FlatJSON.fault("the VMM is stopping"))

    static let release: @convention(c) (UnsafeMutableRawPointer?, vmm_api_answer_t) -> Void = { _, answer in
        free(UnsafeMutableRawPointer(mutating: answer.body))
    }
}
