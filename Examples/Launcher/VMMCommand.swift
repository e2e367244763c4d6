import Glibc
import VMMKit

/// `vmm`: the plain forms of `vmm run` are read here (RunFastParse.swift); everything
/// else (help, errors, the other subcommands, unusual forms) goes through ArgumentParser
/// in libVMMCommandLine.so, loaded only then (ParsedCommand.swift), so a run never maps
/// ArgumentParser or the FoundationEssentials it brings. Errors are one line on stderr
/// and a documented status (usage errors 2).
@main
enum VMM {
    static func main() {
        StartupTrace.mark("main")
        openStandardDescriptors()
        setUpSignals()
        do throws(LauncherError) {
            let args = Array(CommandLine.arguments.dropFirst())
            if let flags = RunFlags.fastParse(args) {
                #if DEBUG
                checkFastParse(flags, args)
                #endif
                try flags.launch()
            }
            try ParsedCommand.parse(args).run()
        } catch {
            ExitStats.err("vmm: \(error.message.asOneLine)\n")
            Glibc.exit(error.status.rawValue)
        }
    }

    /// Signals as `vmm` needs them, whatever it inherited. Blocked signals survive exec:
    /// a Swift program that starts `vmm` from a Dispatch or concurrency thread passes on a
    /// mask blocking SIGTERM and SIGINT, and `kill` then had no effect until
    /// `--max-seconds` (if given) ended the run. Every thread `vmm` starts inherits this
    /// empty mask; ignored signals (`nohup`) stay ignored.
    static func setUpSignals() {
        var none = sigset_t()
        sigemptyset(&none)
        pthread_sigmask(SIG_SETMASK, &none, nil)
        // A write to a pipe whose reader left (`vmm run … | head`, a closed stderr, a
        // control socket closed by its server) returns EPIPE to the writer rather than
        // ending the process with status 141: the documented status stands.
        signal(SIGPIPE, SIG_IGN)
        // The same for a file that reaches RLIMIT_FSIZE (`ulimit -f`): the write gets EFBIG
        // and is reported where it failed (a snapshot removes its partial directory, a
        // console says once that it stopped), where SIGXFSZ's default action ended `vmm`
        // with status 153 and no word. Set before anything writes a file. Plugin code runs
        // with both ignored, and so would a process it starts (ignored signals survive
        // exec): Plugins/README.md tells authors. `vmm`'s own one child, the probe of
        // `vmm plugins --probe`, is `vmm` again and comes through here.
        signal(SIGXFSZ, SIG_IGN)
    }

    /// Opens /dev/null on any of descriptors 0-2 that `vmm` was started without
    /// (`vmm run … <&-`). Otherwise the first pipe the launcher makes takes that number:
    /// the signal-stop pipe became "stdin", the UART read its bytes (SIGTERM's among
    /// them), and the run never ended; a closed stdout or stderr took the guest's output
    /// or the launcher's messages into it.
    static func openStandardDescriptors() {
        for fd: Int32 in 0...2 where fcntl(fd, F_GETFD) == -1 {
            let null = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY)
            if null >= 0, null != fd { dup2(null, fd); close(null) }
        }
    }

    /// The launcher's exit statuses, for `vmm --help`.
    static var statusHelp: String {
        LauncherStatus.allCases.map { "\($0.rawValue) \($0.meaning)" }.joined(separator: "; ")
    }
}

#if DEBUG
/// Debug builds (the suite's launcher) check every fast parse against ArgumentParser's,
/// when libVMMCommandLine.so is there to ask.
func checkFastParse(_ flags: RunFlags, _ args: [String]) {
    guard let parsed = try? ParsedCommand.parse(args, exitOnOutput: false) else { return }
    precondition((try? RunFlags(parsed)) == flags, "vmm: the fast parse of \(args) differs from ArgumentParser's")
}
#endif
