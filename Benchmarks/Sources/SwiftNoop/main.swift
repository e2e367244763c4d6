// The baseline of `VMMBench startup`: a Swift process that does nothing.
