/// Standard base64 (RFC 4648, with padding), written straight into a byte buffer.
enum Base64 {
    static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func append(_ input: UnsafeRawBufferPointer, to output: inout [UInt8]) {
        let count = input.count
        guard count > 0 else { return }
        let outputCount = (count + 2) / 3 * 4
        let start = output.count
        output.append(contentsOf: repeatElement(0, count: outputCount))
        alphabet.withUnsafeBufferPointer { table in
            output.withUnsafeMutableBufferPointer { out in
                var o = start
                var i = 0
                while i + 3 <= count {
                    let b0 = Int(input[i]), b1 = Int(input[i + 1]), b2 = Int(input[i + 2])
                    out[o] = table[b0 >> 2]
                    out[o + 1] = table[(b0 & 3) << 4 | b1 >> 4]
                    out[o + 2] = table[(b1 & 15) << 2 | b2 >> 6]
                    out[o + 3] = table[b2 & 63]
                    i += 3
                    o += 4
                }
                if i < count {
                    let b0 = Int(input[i])
                    let b1 = i + 1 < count ? Int(input[i + 1]) : 0
                    out[o] = table[b0 >> 2]
                    out[o + 1] = table[(b0 & 3) << 4 | b1 >> 4]
                    out[o + 2] = i + 1 < count ? table[(b1 & 15) << 2] : 0x3D
                    out[o + 3] = 0x3D
                }
            }
        }
    }

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        bytes.withUnsafeBytes { append($0, to: &out) }
        return String(decoding: out, as: UTF8.self)
    }
}
