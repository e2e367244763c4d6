import VMMKit

/// The control API's operations on a `VMController`, independent of HTTP: each takes the
/// request body's bytes (already bounded by the server) and answers a status and a JSON
/// body. `Docs/api/vmm-api.yaml` is the contract; the launcher's server maps routes here.
public struct ControlAPI: Sendable {
    public struct Answer: Equatable, Sendable {
        public let status: Int
        /// JSON, or empty for 204.
        public let body: String
        public init(status: Int, body: String) {
            self.status = status
            self.body = body
        }
        static let noContent = Answer(status: 204, body: "")
        static func fault(_ e: ControlError) -> Answer { Answer(status: e.status, body: FlatJSON.fault(e.description)) }
    }

    /// Request bodies larger than this are refused (413) before they are parsed.
    public static let maxBodyBytes = 4096
    /// A snapshot directory path longer than PATH_MAX is refused.
    public static let maxPathBytes = 4095

    public let controller: VMController

    public init(_ controller: VMController) { self.controller = controller }

    /// GET /vm
    public func info() -> Answer {
        let i = controller.info()
        let vcpus = i.vcpus.map { "{\"id\": \($0.id), \"state\": \(FlatJSON.quote(Self.name($0.state)))}" }
        let memory = i.memory.map {
            "{\"name\": \(FlatJSON.quote($0.name)), \"guest_address\": \($0.guestAddress), \"size\": \($0.size), \"backing\": \(FlatJSON.quote($0.backing))}"
        }
        return Answer(status: 200, body: "{\"state\": \(FlatJSON.quote(Self.name(i.state))), \"vcpu_count\": \(i.vcpus.count), "
            + "\"vcpus\": [\(vcpus.joined(separator: ", "))], \"memory\": [\(memory.joined(separator: ", "))]}\n")
    }

    /// PATCH /vm  {"state": "Paused" | "Resumed"}
    public func setState(_ body: [UInt8]) -> Answer {
        run { () throws(ControlError) in
            let fields = try Self.fields(body, required: ["state"])
            switch fields["state"]! {
            case "Paused": try controller.pause()
            case "Resumed": try controller.resume()
            case let other: throw .badRequest("field 'state' must be \"Paused\" or \"Resumed\", not \(FlatJSON.quote(other))")
            }
        }
    }

    /// PUT /actions  {"action_type": "Stop" | "PowerButton" | "SendCtrlAltDel"}
    public func action(_ body: [UInt8]) -> Answer {
        run { () throws(ControlError) in
            let fields = try Self.fields(body, required: ["action_type"])
            switch fields["action_type"]! {
            case "Stop": controller.stop()
            case "PowerButton": try controller.pressPowerButton()
            case "SendCtrlAltDel": try controller.sendKeys(["ctrl-alt-delete"]) // Firecracker's action
            case let other:
                throw .badRequest("field 'action_type' must be \"Stop\", \"PowerButton\" or \"SendCtrlAltDel\", not \(FlatJSON.quote(other))")
            }
        }
    }

    /// PUT /vm/keys  {"keys": "shift-h i ret"}: key combinations separated by spaces.
    public func keys(_ body: [UInt8]) -> Answer {
        run { () throws(ControlError) in
            let keys = try Self.fields(body, required: ["keys"])["keys"]!
            let combinations = keys.split(separator: " ")
            guard !combinations.isEmpty else { throw .badRequest("field 'keys' names no key (combinations such as \"ctrl-alt-delete\", separated by spaces)") }
            try controller.sendKeys(combinations)
        }
    }

    /// PUT /snapshot/create  {"snapshot_dir": DIR}
    public func snapshot(_ body: [UInt8]) -> Answer {
        run { () throws(ControlError) in
            let fields = try Self.fields(body, required: ["snapshot_dir"])
            let dir = fields["snapshot_dir"]!
            guard !dir.isEmpty, dir.utf8.count <= Self.maxPathBytes, !dir.utf8.contains(0) else {
                throw .badRequest("field 'snapshot_dir' must be a non-empty path of at most \(Self.maxPathBytes) bytes without NUL")
            }
            try controller.snapshot(to: dir)
        }
    }

    /// PUT /vm/screendump  {"filename": PATH}: the graphics screen as a PPM, written by
    /// the VMM (QMP's `screendump`).
    public func screendump(_ body: [UInt8]) -> Answer {
        run { () throws(ControlError) in
            let path = try Self.fields(body, required: ["filename"])["filename"]!
            guard !path.isEmpty, path.utf8.count <= Self.maxPathBytes, !path.utf8.contains(0) else {
                throw .badRequest("field 'filename' must be a non-empty path of at most \(Self.maxPathBytes) bytes without NUL")
            }
            try controller.screendump(to: path)
        }
    }

    /// PUT /vm/mouse  {"dx": "10", "dy": "-5", "wheel": "1", "buttons": "left right"}: each
    /// field optional (a number from -1023 to 1023; buttons by name, "" for none, absent:
    /// as they are), at least one given.
    public func mouse(_ body: [UInt8]) -> Answer {
        run { () throws(ControlError) in
            let fields = try Self.fields(body, required: [], optional: ["dx", "dy", "wheel", "buttons"])
            guard !fields.isEmpty else { throw .badRequest("no field: give 'dx', 'dy', 'wheel' or 'buttons'") }
            func number(_ key: String) throws(ControlError) -> Int {
                guard let text = fields[key] else { return 0 }
                let negative = text.hasPrefix("-")
                let digits = negative ? text.dropFirst() : Substring(text)
                guard !digits.isEmpty, digits.count <= 4, digits.utf8.allSatisfy({ (0x30...0x39).contains($0) }), let n = Int(digits), n <= MouseEvent.maxMotion else {
                    throw .badRequest("field '\(key)' must be a whole number from -\(MouseEvent.maxMotion) to \(MouseEvent.maxMotion), not \(FlatJSON.quote(text))")
                }
                return negative ? -n : n
            }
            var event = MouseEvent(dx: try number("dx"), dy: try number("dy"), wheel: try number("wheel"))
            if let names = fields["buttons"] {
                var held: UInt8 = 0
                for name in names.split(separator: " ") {
                    guard let bit = MouseEvent.buttonNames.firstIndex(of: String(name)) else {
                        throw .badRequest("unknown button \(FlatJSON.quote(String(name))) (\(MouseEvent.buttonNames.joined(separator: ", ")))")
                    }
                    held |= 1 << UInt8(bit)
                }
                event.buttons = held
            }
            try controller.moveMouse(event)
        }
    }

    /// GET /vm/screen
    public func screen() -> Answer {
        do { return Answer(status: 200, body: "{\"text\": \(FlatJSON.quote(try controller.screen()))}\n") } catch { return .fault(error) }
    }

    /// GET /metrics
    public func metrics() -> Answer {
        let m = controller.metrics()
        var parts = ["\"exits_per_vcpu\": [\(m.exitsPerVCPU.map(String.init).joined(separator: ", "))]"]
        if let kinds = m.exitsByKind {
            parts.append("\"exits_by_kind\": {\(kinds.map { "\(FlatJSON.quote($0.kind)): \($0.count)" }.joined(separator: ", "))}")
        }
        for group in m.counters {
            parts.append("\(FlatJSON.quote(group.group)): {\(group.values.map { "\(FlatJSON.quote($0.0)): \($0.1)" }.joined(separator: ", "))}")
        }
        return Answer(status: 200, body: "{\(parts.joined(separator: ", "))}\n")
    }

    /// The answer for a body over `maxBodyBytes`.
    public static func tooLarge() -> Answer {
        Answer(status: 413, body: FlatJSON.fault("request body larger than \(maxBodyBytes) bytes"))
    }

    private func run(_ op: () throws(ControlError) -> Void) -> Answer {
        do { try op(); return .noContent } catch { return .fault(error) }
    }

    /// The body's fields: exactly `required`, nothing unknown.
    static func fields(_ body: [UInt8], required: Set<String>, optional: Set<String> = []) throws(ControlError) -> [String: String] {
        guard body.count <= maxBodyBytes else { throw .badRequest("request body larger than \(maxBodyBytes) bytes") }
        guard !body.isEmpty else { throw .badRequest("missing JSON body with \(required.union(optional).sorted().map { "'\($0)'" }.joined(separator: ", "))") }
        let fields = try FlatJSON.parseObject(body)
        if let unknown = fields.keys.sorted().first(where: { !required.contains($0) && !optional.contains($0) }) {
            throw .badRequest("unknown field \(unknown.quotedForMessage)")
        }
        if let missing = required.sorted().first(where: { fields[$0] == nil }) {
            throw .badRequest("missing field '\(missing)'")
        }
        return fields
    }

    static func name(_ s: VCPURunState) -> String {
        switch s {
        case .running: "Running"
        case .paused: "Paused"
        case .stopped: "Stopped"
        }
    }
}
