extension Array where Element == UInt8 {
    /// Appends `bytes` as the inside of a JSON string: escapes as RFC 8259 requires, keeps valid
    /// UTF-8, and replaces invalid bytes with U+FFFD (the exact bytes are always in `raw`).
    mutating func appendJSONEscaped(_ bytes: UnsafeRawBufferPointer) {
        let count = bytes.count
        var index = 0
        let hex: StaticString = "0123456789abcdef"
        while index < count {
            // Copy the run that needs no escaping in one go.
            var run = index
            while run < count, case let b = bytes[run], b >= 0x20, b < 0x80, b != 0x22, b != 0x5C { run += 1 }
            if run > index {
                appendBytes(UnsafeRawBufferPointer(rebasing: bytes[index..<run]))
                index = run
                if index == count { break }
            }
            let byte = bytes[index]
            if byte >= 0x20, byte < 0x80 {
                if byte == 0x22 || byte == 0x5C { append(0x5C) }
                append(byte)
                index += 1
                continue
            }
            if byte < 0x20 {
                switch byte {
                case 0x0A: append(0x5C); append(0x6E)
                case 0x0D: append(0x5C); append(0x72)
                case 0x09: append(0x5C); append(0x74)
                default:
                    appendASCII("\\u00")
                    append(hex.utf8Start[Int(byte >> 4)])
                    append(hex.utf8Start[Int(byte & 0xF)])
                }
                index += 1
                continue
            }
            let length = Self.utf8SequenceLength(bytes, at: index)
            if length > 0 {
                append(contentsOf: bytes[index..<(index + length)])
                index += length
            } else {
                append(contentsOf: [0xEF, 0xBF, 0xBD])
                index += 1
            }
        }
    }

    /// The length of the valid UTF-8 sequence starting at `index`, or 0 if it is not valid.
    static func utf8SequenceLength(_ bytes: UnsafeRawBufferPointer, at index: Int) -> Int {
        let lead = bytes[index]
        let length: Int
        let minimum: UInt32
        switch lead {
        case 0xC2...0xDF: length = 2; minimum = 0x80
        case 0xE0...0xEF: length = 3; minimum = 0x800
        case 0xF0...0xF4: length = 4; minimum = 0x10000
        default: return 0
        }
        guard index + length <= bytes.count else { return 0 }
        var scalar = UInt32(lead) & (length == 2 ? 0x1F : length == 3 ? 0x0F : 0x07)
        for offset in 1..<length {
            let next = bytes[index + offset]
            guard next & 0xC0 == 0x80 else { return 0 }
            scalar = scalar << 6 | UInt32(next & 0x3F)
        }
        guard scalar >= minimum, scalar <= 0x10FFFF, !(0xD800...0xDFFF).contains(scalar) else { return 0 }
        return length
    }
}
