import VMMKit

/// The launcher's `ThreadRequest` without its signal-stop thread, which this target
/// does not have: a request runs on the caller's thread, as the launcher's does while
/// no vCPU runs. (Here no RTC is connected to an interrupt line, so none is made.)
enum ThreadRequest {
    static func run(_ start: @escaping () throws(VMMError) -> Void) throws(VMMError) {
        try start()
    }
}
