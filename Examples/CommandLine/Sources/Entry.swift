import ArgumentParser
import CVMMCommandLine
import Glibc

/// `vmm_command_line_parse` (vmm_command_line.h): parses, then emits the items or the
/// usage error, or prints help as ArgumentParser's own `main` would; a usage error
/// returns the launcher's usage status instead of ArgumentParser's 64.
@_cdecl("vmm_command_line_parse")
public func vmmCommandLineParse(
    version: UInt32, argc: Int32, argv: UnsafePointer<UnsafePointer<CChar>?>?,
    statusHelpText: UnsafePointer<CChar>?, ctlStatusHelpText: UnsafePointer<CChar>?,
    usageStatus: Int32, context: UnsafeMutableRawPointer?, emit: vmm_command_line_emit_fn?
) -> Int32 {
    guard version == VMM_COMMAND_LINE_VERSION, let emit else {
        writeError("vmm: libVMMCommandLine.so speaks version \(VMM_COMMAND_LINE_VERSION) of vmm_command_line.h, the launcher \(version)\n")
        return usageStatus
    }
    statusHelp = statusHelpText.map { String(cString: $0) } ?? ""
    ctlStatusHelp = ctlStatusHelpText.map { String(cString: $0) } ?? ""
    let args = (0..<Int(max(argc, 0))).map { i in argv?[i].map { String(cString: $0) } ?? "" }
    do {
        var command = try VMMArguments.parseAsRoot(args)
        guard let parsed = command as? any EmittingArguments else {
            // `vmm` alone: the root's run() asks for its help.
            try command.run()
            return 0
        }
        parsed.emit { key, value in
            key.withCString { k in
                if let value { value.withCString { emit(context, k, $0) } } else { emit(context, k, nil) }
            }
        }
        return -1
    } catch {
        let message = VMMArguments.fullMessage(for: error)
        if VMMArguments.exitCode(for: error) == .success {
            print(message)
            fflush(nil)
            return 0
        }
        // The launcher prints it: the message may repeat an argument's raw bytes.
        let brief = VMMArguments.message(for: error)
        (brief.isEmpty ? "bad command line" : brief).withCString { emit(context, "error", $0) }
        return usageStatus
    }
}

/// One write(2) to stderr, as the launcher reports errors.
private func writeError(_ line: String) {
    var line = line
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}
