import Foundation
import Testing

/// `vmm run`'s console (the UART plugin on COM1) as a user sees it: replaced by a
/// `--plugin UART,...` of their own.
@Suite("vmm console: replacing the default", .serialized,
       .enabled(if: KVMAvailability.present, KVMAvailability.reason))
struct LauncherConsoleTests {
    @Test("--plugin UART,... and --plugin DebugExit,... replace the defaults of those names: no built-in stand-in clashes with them")
    func replaceDefaults() throws {
        let hello = VMMProcess.guest("hello64.elf")
        let both = try VMMProcess.run(["run", hello, "--plugin", "UART,output=stdout", "--plugin", "DebugExit,port=0xf4"])
        #expect(both.status == 1, "\(both.stderr)")
        #expect(both.stdout == "Hello from an ELF64 guest\n")
        #expect(both.stderr == "")
    }
}
