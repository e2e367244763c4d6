import FuzzDriver

// The launcher's i8042 (its source file is linked here): a program of guest reads and
// writes of ports 0x60 and 0x64. The status never says "input buffer full" (a guest
// waiting for it to clear would wait for ever), "output full" is set exactly while a
// reply waits, the reply queue stays bounded, and only the reset line's writes reset.
runFuzzer { data, size in
    let input = fuzzInput(data, size)
    let kbd = I8042()
    var i = 0, awaitingOutputPort = false
    while i < input.count {
        let op = input[i], value = i + 1 < input.count ? input[i + 1] : 0
        i += 2
        let port = op & 1 == 0 ? I8042.dataPort : I8042.commandPort
        if op & 2 == 0 {
            let status = kbd.read(I8042.commandPort)
            precondition(status & 0x02 == 0, "i8042 status \(status): input buffer full")
            _ = kbd.read(port)
            continue
        }
        let reset = kbd.write(port, value)
        let expected = port == I8042.commandPort ? (value >= 0xf0 && value & 1 == 0) : (awaitingOutputPort && value & 1 == 0)
        precondition(reset == expected, "write \(value) to \(port): reset \(reset)")
        awaitingOutputPort = port == I8042.commandPort && value == 0xd1
    }
    // Drain: at most the queue's limit of replies, with "output full" set while one waits.
    var replies = 0
    while kbd.read(I8042.commandPort) & 0x01 != 0 {
        _ = kbd.read(I8042.dataPort)
        replies += 1
        precondition(replies <= I8042.queueLimit, "more than \(I8042.queueLimit) replies queued")
    }
    return 0
}
