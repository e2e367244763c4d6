import Glibc
import Testing
@testable import VMMKit

/// The thread/1 extension: a handler on a vCPU thread, whose seccomp list refuses
/// `clone`, asks the host for a thread, and the VMM's `PluginHost.threadStarter` starts
/// it on a thread that may. Fixture: guard_plugin.c, config "thread=1", port 0x539.
@Suite("thread/1: a thread for a handler on a vCPU thread", .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct PluginThreadExtensionTests {
    /// mov $0x539,%dx; in %dx,%al (0: the thread ran; else start_thread's errno); mov %al,0x20000; hlt
    static let code: [UInt8] = [0x66, 0xba, 0x39, 0x05, 0xec, 0x88, 0x04, 0x25, 0x00, 0x00, 0x02, 0x00, 0xf4]

    func run(_ starter: @escaping PluginThreadStarter) throws -> UInt8 {
        let (guest, host) = try PluginFixtures.guest("hlt")
        defer { host.close() }
        try guest.vm.memory.writeBytes(GuestLayout.codeStart, Self.code)
        host.threadStarter = starter
        try host.load(PluginFixtures.fixture("Guard"), config: "thread=1")
        guest.vm.setSeccomp(.vcpuDefault)
        #expect(try guest.run() == .halted)
        return try guest.vm.memory.read(0x20000, as: UInt8.self)
    }

    @Test("under the vCPU seccomp list a handler's thread is started by the VMM's starter, on a thread of its own, and runs")
    func startedForVCPU() throws {
        let server = ThreadServer()
        defer { server.stop() }
        let refusedBefore = Seccomp.refusedCount
        #expect(try run { start in server.run(start) } == 0)
        #expect(server.served == 1)
        #expect(Seccomp.refusedCount == refusedBefore)
    }

    @Test("a starter that cannot start it: the handler gets its errno")
    func starterRefuses() throws {
        #expect(try run { _ in -ESHUTDOWN } == UInt8(ESHUTDOWN))
    }

    @Test("a VMM that set no starter offers no thread/1 (the plugin starts its threads at init)")
    func notOffered() throws {
        let (_, host) = try PluginFixtures.guest("hlt")
        defer { host.close() }
        var error: PluginError?
        do { try host.load(PluginFixtures.fixture("Guard"), config: "thread=1") } catch let e { error = e }
        #expect(error?.description.hasSuffix("init failed: no org.vmmkit.host.thread/1 extension") == true,
                "\(error?.description ?? "loaded")")
    }
}

/// Runs requests on a thread of its own, as the launcher's signal-stop thread does for
/// vCPUs (`ThreadRequest`).
final class ThreadServer: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let changed = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var request: (@Sendable () -> Int32)?
    private var answer: Int32?
    private var stopping = false
    private var count = 0
    private var thread = pthread_t()

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(changed, nil)
        let rc = pthread_create(&thread, nil, { raw in
            Unmanaged<ThreadServer>.fromOpaque(raw!).takeUnretainedValue().serve()
            return nil
        }, Unmanaged.passUnretained(self).toOpaque())
        precondition(rc == 0, "pthread_create: \(rc)")
    }

    deinit {
        pthread_cond_destroy(changed); changed.deallocate()
        pthread_mutex_destroy(mutex); mutex.deallocate()
    }

    var served: Int { pthread_mutex_lock(mutex); defer { pthread_mutex_unlock(mutex) }; return count }

    /// [any thread] Runs `body` on the server's thread and returns its result.
    func run(_ body: @escaping @Sendable () -> Int32) -> Int32 {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        while request != nil || answer != nil { pthread_cond_wait(changed, mutex) }
        request = body
        pthread_cond_broadcast(changed)
        while answer == nil { pthread_cond_wait(changed, mutex) }
        defer { answer = nil; pthread_cond_broadcast(changed) }
        return answer!
    }

    private func serve() {
        pthread_mutex_lock(mutex)
        while true {
            while request == nil && !stopping { pthread_cond_wait(changed, mutex) }
            guard let body = request else { break }
            request = nil
            pthread_mutex_unlock(mutex)
            let rc = body()
            pthread_mutex_lock(mutex)
            answer = rc
            count += 1
            pthread_cond_broadcast(changed)
        }
        pthread_mutex_unlock(mutex)
    }

    func stop() {
        pthread_mutex_lock(mutex)
        stopping = true
        pthread_cond_broadcast(changed)
        pthread_mutex_unlock(mutex)
        pthread_join(thread, nil)
    }
}
