import Glibc
import VMMKit

/// Starts a thread for a vCPU, which may not start one itself: its seccomp list refuses
/// `clone`. The request goes through the signal-stop pipe to the signal-stop thread,
/// which is there for the whole run anyway, and the vCPU waits for the answer (one
/// `pthread_create`, once in a run). With no such thread serving (the machine being
/// built or restored, before any vCPU runs) the caller starts it itself.
///
/// What lets a device start its thread when the guest first needs it rather than in
/// every run: the RTC's interrupt thread, which a guest that never enables an RTC
/// interrupt (most) never has.
enum ThreadRequest {
    /// The pipe byte that asks the signal-stop thread to serve a request.
    static let pipeByte: UInt8 = 3

    nonisolated(unsafe) private static let lock: UnsafeMutablePointer<pthread_mutex_t> = {
        let p = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(p, nil)
        return p
    }()
    nonisolated(unsafe) private static let changed: UnsafeMutablePointer<pthread_cond_t> = {
        let p = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
        pthread_cond_init(p, nil)
        return p
    }()
    // Guarded by lock:
    /// The signal-stop thread reads the pipe.
    nonisolated(unsafe) private static var serving = false
    /// A request is between its write and its answer: the next one waits.
    nonisolated(unsafe) private static var busy = false
    /// The request the pipe's byte stands for, until the signal-stop thread takes it.
    nonisolated(unsafe) private static var pending: (() -> VMMError?)?
    /// nil until answered; then the request's error, or `.some(nil)`: it succeeded.
    nonisolated(unsafe) private static var answer: VMMError??

    /// [any thread] Runs `start` on the signal-stop thread and waits for it to return,
    /// or runs it here when that thread is not serving. `start`'s error is rethrown.
    static func run(_ start: @escaping () throws(VMMError) -> Void) throws(VMMError) {
        pthread_mutex_lock(lock)
        while busy { pthread_cond_wait(changed, lock) }
        guard serving else {
            pthread_mutex_unlock(lock)
            try start()
            return
        }
        busy = true
        answer = nil
        pending = { () -> VMMError? in
            do throws(VMMError) { try start() } catch { return error }
            return nil
        }
        pthread_mutex_unlock(lock)

        var byte = pipeByte
        let written = write(SignalStop.writeEnd, &byte, 1)
        let writeErrno = errno

        pthread_mutex_lock(lock)
        defer {
            busy = false
            pending = nil
            pthread_cond_broadcast(changed)
            pthread_mutex_unlock(lock)
        }
        guard written == 1 else {
            throw .systemCallFailed(name: "write to the signal-stop thread's pipe", errno: .init(rawValue: writeErrno))
        }
        // The thread answers, or ends (the run is over) and cannot.
        while answer == nil && serving { pthread_cond_wait(changed, lock) }
        guard let result = answer else { throw .closed("the signal-stop thread") }
        if let result { throw result }
    }

    /// `PluginHost.threadStarter`: a plugin's thread (thread/1, the UART's console
    /// writer) is started as the RTC's is.
    static let pluginStarter: PluginThreadStarter = { start in
        final class Answer: @unchecked Sendable { var rc = -ESHUTDOWN }
        let answer = Answer()
        do throws(VMMError) { try run { answer.rc = start() } } catch { return -ESHUTDOWN }
        return answer.rc
    }

    /// [signal-stop thread] Starts or ends serving requests.
    static func setServing(_ on: Bool) {
        pthread_mutex_lock(lock)
        serving = on
        pthread_cond_broadcast(changed)
        pthread_mutex_unlock(lock)
    }

    /// [signal-stop thread] The pipe said `pipeByte`: runs the request and answers it.
    static func serve() {
        pthread_mutex_lock(lock)
        let request = pending
        pending = nil
        pthread_mutex_unlock(lock)
        guard let request else { return }
        let result = request()
        pthread_mutex_lock(lock)
        answer = .some(result)
        pthread_cond_broadcast(changed)
        pthread_mutex_unlock(lock)
    }
}
