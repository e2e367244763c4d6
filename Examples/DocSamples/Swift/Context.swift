// The code samples of the documentation, compiled (Examples/DocSamples/README.md).
// Names the samples use without defining them.

/// The guest the samples load: one `hlt`.
let guestCode: [UInt8] = [0xf4]
