import Glibc

/// How the sink's writer thread is started and named: by the sink itself, or by a
/// `ThreadStarter` for a sink fed from a vCPU thread, which may not start threads.
extension UARTOutputSink {
    /// Starts a joinable thread running `entry(argument)` for a caller that may not start
    /// one (a vCPU thread): the thread, or the errno of the failure.
    public typealias ThreadStarter = (_ entry: @convention(c) (UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer?,
                                      _ argument: UnsafeMutableRawPointer) -> Result<pthread_t, StartError>

    /// Why a `ThreadStarter` could not start the writer.
    public struct StartError: Error, Sendable {
        public let errno: Int32
        public init(errno: Int32) { self.errno = errno }
    }

    /// `pthread_create`, for a sink that starts its writer on a thread that may.
    static func create(_ entry: @convention(c) (UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer?,
                       _ argument: UnsafeMutableRawPointer) -> Result<pthread_t, StartError> {
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, entry, argument)
        return rc == 0 ? .success(thread) : .failure(StartError(errno: rc))
    }

    static func cannotStart(_ errno: Int32) -> String {
        "cannot start the output thread: \(String(cString: strerror(errno))) (errno \(errno))"
    }

    /// Names the calling thread as VMMKit names its own (`top -H`, gdb, the leak tests).
    /// Through /proc: this model depends on nothing, and Glibc's module lacks
    /// pthread_setname_np.
    static func nameThread(_ name: String) {
        let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return }
        _ = name.withCString { Glibc.write(fd, $0, strlen($0)) }
        Glibc.close(fd)
    }
}
