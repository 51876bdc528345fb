import CSMTPScan

/// Standard base64 (RFC 4648, with padding), written straight into a byte buffer.
enum Base64 {
    /// A reused scratch area: the encoder (C) writes there, and one copy appends it.
    nonisolated(unsafe) static var scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 16, alignment: 1)

    static func append(_ input: UnsafeRawBufferPointer, to output: inout [UInt8]) {
        guard let base = input.baseAddress, !input.isEmpty else { return }
        let needed = (input.count + 2) / 3 * 4
        if scratch.count < needed {
            scratch.deallocate()
            scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: needed * 2, alignment: 1)
        }
        let written = smtp_base64_encode(base, input.count, scratch.baseAddress!)
        output.appendBytes(UnsafeRawBufferPointer(start: scratch.baseAddress, count: written))
    }

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        bytes.withUnsafeBytes { append($0, to: &out) }
        return String(decoding: out, as: UTF8.self)
    }
}
