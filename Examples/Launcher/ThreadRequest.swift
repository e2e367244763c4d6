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

    private static let lock = ConditionLock()
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
        lock.lock()
        while busy { lock.wait() }
        guard serving else {
            lock.unlock()
            try start()
            return
        }
        busy = true
        answer = nil
        pending = { () -> VMMError? in
            do throws(VMMError) { try start() } catch { return error }
            return nil
        }
        lock.unlock()

        var byte = pipeByte
        let written = write(SignalStop.writeEnd, &byte, 1)
        let writeErrno = errno

        lock.lock()
        defer {
            busy = false
            pending = nil
            lock.broadcast()
            lock.unlock()
        }
        guard written == 1 else {
            throw .systemCallFailed(name: "write to the signal-stop thread's pipe", errno: .init(rawValue: writeErrno))
        }
        // The thread answers, or ends (the run is over) and cannot.
        while answer == nil && serving { lock.wait() }
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
        lock.lock()
        serving = on
        lock.broadcast()
        lock.unlock()
    }

    /// [signal-stop thread] The pipe said `pipeByte`: runs the request and answers it.
    static func serve() {
        lock.lock()
        let request = pending
        pending = nil
        lock.unlock()
        guard let request else { return }
        let result = request()
        lock.lock()
        answer = .some(result)
        lock.broadcast()
        lock.unlock()
    }
}
