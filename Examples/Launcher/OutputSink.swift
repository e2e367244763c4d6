import Glibc
import VMMKit

/// Where a write-only guest device's bytes go (`--serial` for the stand-in COM1,
/// `--debugcon`): stdout, a file, or nowhere. An exit's bytes (a string instruction's
/// many) in one write under a lock, so bytes from several vCPUs never tear one another;
/// a failed write (a full disk, a closed pipe, `ulimit -f`) is reported once and ends the
/// output: the guest is never told, so the user is.
final class OutputSink: @unchecked Sendable {
    /// What the user reads in a message: "console (COM1)", "debug console (port 0xe9)".
    let device: String
    /// What a failed write costs, in its message: a console loses the guest's later
    /// output; a picture or screen written once at the end is left incomplete.
    private let loss: String
    private let fd: Int32
    private let ownsFD: Bool
    private let target: String
    /// Whether a write failed (output ended); locked, so an exit's bytes go out in one write.
    private let failed = Lock(false)

    /// `flag` names the option in an error ("--serial"); `fifoNote` says why a FIFO
    /// without a reader is refused rather than waited for.
    init(_ target: SerialTarget, device: String, flag: String, fifoNote: String,
         loss: String = "output stopped, the guest's later output is lost") throws(LauncherError) {
        self.device = device
        self.loss = loss
        self.target = switch target {
        case .stdio: "stdout"
        case .none: "nothing"
        case let .file(path): path
        }
        switch target {
        case .stdio: fd = 1; ownsFD = false
        case .none: fd = -1; ownsFD = false
        case let .file(path):
            // O_NONBLOCK: open() of a FIFO nobody reads fails at once (ENXIO) instead of
            // blocking the launcher for good. Writes block as before (cleared below).
            let f = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NONBLOCK, 0o644)
            guard f >= 0 else {
                let why = errno == ENXIO ? "a FIFO nobody reads (\(fifoNote))" : String(cString: strerror(errno))
                throw LauncherError(.usage, "\(flag) file:\(path): cannot open: \(why)")
            }
            _ = fcntl(f, F_SETFL, fcntl(f, F_GETFL) & ~O_NONBLOCK)
            fd = f; ownsFD = true
        }
    }

    deinit { if ownsFD { close(fd) } }

    /// The low byte of each of `count` elements, in order.
    func emit(count: Int, _ element: (Int) -> UInt32) {
        guard fd >= 0, count > 0 else { return }
        // A PIO exit holds at most a page of elements (the kernel's batch): on the stack.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: count) { bytes in
            for i in 0..<count { bytes[i] = UInt8(truncatingIfNeeded: element(i)) }
            failed.withLock { failed in if !failed { put(UnsafeRawBufferPointer(bytes), &failed) } }
        }
    }

    /// `bytes` as they are (a picture's rows, `Screendump`).
    func emit(_ bytes: [UInt8]) {
        guard fd >= 0, !bytes.isEmpty else { return }
        failed.withLock { failed in if !failed { bytes.withUnsafeBytes { put($0, &failed) } } }
    }

    private func put(_ bytes: UnsafeRawBufferPointer, _ failed: inout Bool) {
        var done = 0
        while done < bytes.count {
            let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
            if n > 0 { done += n; continue }
            if n < 0, errno == EINTR { continue }
            failed = true
            let reason = n < 0 ? "\(String(cString: strerror(errno))) (errno \(errno))" : "it took nothing"
            ExitStats.err("vmm: \(device): \(loss): writing to \(target) failed: \(reason)\n")
            return
        }
    }
}
