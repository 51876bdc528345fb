import SMTPCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes every transferred message as an `.eml` file in one folder.
///
/// Names come only from the session and message numbers (`session-0001-message-01.eml`), never
/// from anything inside the capture, so nothing can be written outside the folder. DATA is
/// dot-unstuffed; BDAT chunks are joined as they are. A message the capture cut short is kept as
/// `session-0001-message-01.incomplete.eml`.
public final class MessageFileWriter: SessionObserver {
    public struct WriteError: Error, CustomStringConvertible {
        public var description: String
    }

    let directory: String
    var session = 0
    /// The message file open in each session: sessions overlap in time, and so do their messages.
    var open: [Int: (descriptor: Int32, path: String)] = [:]
    var buffer: [UInt8] = []
    public private(set) var written: [String] = []
    public private(set) var error: WriteError?

    /// Creates the folder if needed.
    public init(directory: String) throws(WriteError) {
        self.directory = directory
        do {
            try OutputFolder.create(directory)
        } catch {
            throw WriteError(description: error.description)
        }
    }

    deinit {
        for file in open.values { close(file.descriptor) }
    }

    static func fileName(session: Int, message: Int, complete: Bool) -> String {
        let s = String(session), m = String(message)
        return "session-" + String(repeating: "0", count: max(0, 4 - s.count)) + s
            + "-message-" + String(repeating: "0", count: max(0, 2 - m.count)) + m
            + (complete ? ".eml" : ".incomplete.eml")
    }

    func write(_ bytes: UnsafeRawBufferPointer, to file: (descriptor: Int32, path: String)) {
        guard let base = bytes.baseAddress else { return }
        var offset = 0
        while offset < bytes.count {
            let result = Glibc.write(file.descriptor, base + offset, bytes.count - offset)
            if result < 0 {
                if errno == EINTR { continue }
                error = WriteError(description: "\(file.path): \(String(cString: strerror(errno)))")
                return
            }
            offset += result
        }
    }

    /// The open file of the current session's message, created on its first bytes.
    func file(message: Int) -> (descriptor: Int32, path: String)? {
        if let file = open[session] { return file }
        let path = directory + "/" + Self.fileName(session: session, message: message, complete: false)
        let descriptor = Glibc.open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard descriptor >= 0 else {
            error = WriteError(description: "\(path): cannot create: \(String(cString: strerror(errno)))")
            return nil
        }
        open[session] = (descriptor, path)
        return (descriptor, path)
    }

    public func sessionStarted(_ info: SessionInfo) { session = info.id }
    public func select(session id: Int) { session = id }

    public func sessionEnded(_ info: SessionInfo, summary: SessionSummary, reason: SessionEndReason, time: Timestamp) {
        // The dialogue ends every message it began; this only guards against a file left open.
        if let file = open.removeValue(forKey: info.id) { close(file.descriptor) }
    }

    public func messageData(_ raw: UnsafeRawBufferPointer, message: Int, transfer: MessageTransfer, atLineStart: Bool, time: Timestamp) {
        guard let file = file(message: message) else { return }
        if transfer == .data {
            buffer.removeAll(keepingCapacity: true)
            DotStuffing.unstuff(raw, atLineStart: atLineStart, into: &buffer)
            buffer.withUnsafeBytes { write($0, to: file) }
        } else {
            write(raw, to: file)
        }
    }

    public func messageEnd(_ raw: UnsafeRawBufferPointer, message: Int, transfer: MessageTransfer, size: Int, complete: Bool, time: Timestamp) {
        // An empty message (`BDAT 0 LAST`, or DATA with nothing before the dot) is still a message.
        guard let file = file(message: message) else { return }
        close(file.descriptor)
        open[session] = nil
        let finalPath = directory + "/" + Self.fileName(session: session, message: message, complete: complete)
        if finalPath != file.path { rename(file.path, finalPath) }
        written.append(finalPath)
    }

    public func command(_ raw: UnsafeRawBufferPointer, verb: SMTPVerb, flags: LineFlags, secret: Range<Int>?, time: Timestamp) {}
    public func reply(_ raw: UnsafeRawBufferPointer, lineCount: Int, code: Int?, context: ReplyContext, flags: LineFlags, time: Timestamp) {}
    public func authResponse(_ raw: UnsafeRawBufferPointer, secret: Range<Int>?, flags: LineFlags, time: Timestamp) {}
    public func fragment(_ raw: UnsafeRawBufferPointer, side: Side, time: Timestamp) {}
    public func gap(side: Side, bytes: Int, time: Timestamp) {}
    public func tlsStarted(_ mode: TLSMode, time: Timestamp) {}
    public func encrypted(side: Side, bytes: Int, time: Timestamp) {}
}
