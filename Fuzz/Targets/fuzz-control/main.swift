import FuzzDriver
@testable import VMMControl

// The control API's request bodies, which any client of the API socket writes: the
// first byte picks the operation whose fields are asked for, the rest is the body.
// Any body gives the fields or one line of error; fields write back (FlatJSON.quote)
// to a body that parses to the same fields; and any text quotes to a JSON string that
// reads back as that text.
let operations: [Set<String>] = [["state"], ["action_type"], ["snapshot_dir"], ["a", "b"], ["keys"], ["filename"], ["dx", "dy", "wheel", "buttons"]]

runFuzzer { data, size in
    let input = fuzzInput(data, size)
    guard let kind = input.first else { return 0 }
    let body = Array(input.dropFirst())
    do throws(ControlError) {
        let fields = try ControlAPI.fields(body, required: operations[Int(kind) % operations.count])
        let text = "{" + fields.map { "\(FlatJSON.quote($0.key)): \(FlatJSON.quote($0.value))" }.joined(separator: ", ") + "}"
        precondition((try? FlatJSON.parseObject(Array(text.utf8))) == fields, "round trip of \(text.debugDescription)")
    } catch {
        guard case let .badRequest(message) = error else { preconditionFailure("not a bad request: \(error)") }
        requireOneLine(message)
    }
    let s = String(decoding: body, as: UTF8.self)
    precondition((try? FlatJSON.parseObject(Array("{\"k\": \(FlatJSON.quote(s))}".utf8))) == ["k": s])
    return 0
}
