#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Buffered output to a file descriptor: bytes are gathered in a reused buffer and written with
/// `write(2)` in blocks of ``blockSize`` (far cheaper than `print` per line).
public final class ByteOutput {
    public static let blockSize = 64 << 10
    let descriptor: Int32
    var buffer: [UInt8] = []
    /// Set when a write failed (e.g. a closed pipe); further output is dropped.
    public private(set) var failed = false

    public init(descriptor: Int32 = 1) {
        self.descriptor = descriptor
        buffer.reserveCapacity(Self.blockSize + 4096)
    }

    deinit { flush() }

    @inline(__always)
    public func append(_ bytes: UnsafeRawBufferPointer) {
        buffer.appendBytes(bytes)
        if buffer.count >= Self.blockSize { flush() }
    }

    @inline(__always)
    public func append(_ bytes: [UInt8]) {
        buffer.append(contentsOf: bytes)
        if buffer.count >= Self.blockSize { flush() }
    }

    @inline(__always)
    public func append(_ string: String) {
        var string = string
        string.withUTF8 { buffer.append(contentsOf: $0) }
        if buffer.count >= Self.blockSize { flush() }
    }

    public func flush() {
        guard !buffer.isEmpty else { return }
        if !failed {
            buffer.withUnsafeBytes { bytes in
                var offset = 0
                while offset < bytes.count {
                    let written = write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                    if written < 0 {
                        if errno == EINTR { continue }
                        failed = true
                        return
                    }
                    offset += written
                }
            }
        }
        buffer.removeAll(keepingCapacity: true)
    }
}

/// Whether a file descriptor is a terminal (for colour and progress).
public func isTerminal(_ descriptor: Int32) -> Bool { isatty(descriptor) != 0 }

extension Array where Element == UInt8 {
    /// Appends bytes with one copy. (Appending an `UnsafeRawBufferPointer` directly goes byte by
    /// byte; a typed buffer is copied with memcpy.)
    @inline(__always)
    public mutating func appendBytes(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        append(contentsOf: UnsafeBufferPointer(start: base.assumingMemoryBound(to: UInt8.self), count: bytes.count))
    }

    /// Appends the decimal digits of `value`.
    @inline(__always)
    public mutating func appendDecimal(_ value: Int) {
        if value < 0 {
            append(0x2D)
            appendDecimal(-value)
            return
        }
        if value < 10 {
            append(UInt8(0x30 + value))
            return
        }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        var rest = value
        Swift.withUnsafeMutableBytes(of: &digits) { storage in
            while rest > 0 {
                storage[count] = UInt8(0x30 + rest % 10)
                rest /= 10
                count += 1
            }
            for index in stride(from: count - 1, through: 0, by: -1) { append(storage[index]) }
        }
    }

    @inline(__always)
    public mutating func appendASCII(_ string: StaticString) {
        append(contentsOf: UnsafeBufferPointer(start: string.utf8Start, count: string.utf8CodeUnitCount))
    }
}
