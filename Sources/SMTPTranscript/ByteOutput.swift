import SMTPFiles

/// Buffered output to a file descriptor: writers append to ``buffer`` and call ``flushIfFull()``
/// after each complete event; the bytes go out with `write(2)` in blocks of about ``blockSize``
/// (far cheaper than `print` per line).
public final class ByteOutput {
    public static let blockSize = 64 << 10
    let descriptor: Int32
    public let buffer = ByteWriter(capacity: ByteOutput.blockSize + 4096)
    /// Set when a write failed (e.g. a closed pipe); further output is dropped.
    public private(set) var failed = false

    /// Bytes kept in memory instead of written, for an output that collects (``collecting()``).
    public private(set) var collected: [UInt8] = []
    let collects: Bool

    public init(descriptor: Int32 = 1) {
        self.descriptor = descriptor
        collects = false
    }

    init(collecting: Void) {
        descriptor = -1
        collects = true
    }

    /// An output that keeps what is written in ``collected`` (one session's transcript, say).
    public static func collecting() -> ByteOutput { ByteOutput(collecting: ()) }

    deinit { flush() }

    @inline(__always)
    public func flushIfFull() {
        if buffer.count >= Self.blockSize { flush() }
    }

    public func append(_ bytes: UnsafeRawBufferPointer) {
        buffer.append(bytes)
        flushIfFull()
    }

    public func append(_ string: String) {
        buffer.append(string)
        flushIfFull()
    }

    public func flush() {
        guard !buffer.isEmpty else { return }
        if collects {
            collected.append(contentsOf: buffer.bytes)
        } else if !failed, !StandardStream.write(buffer.bytes, to: descriptor) {
            failed = true
        }
        buffer.removeAll()
    }
}

/// Whether a file descriptor is a terminal (for colour and progress).
public func isTerminal(_ descriptor: Int32) -> Bool { StandardStream.isTerminal(descriptor) }
