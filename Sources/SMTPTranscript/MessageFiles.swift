import SMTPCore
import SMTPFiles

/// Writes every transferred message as an `.eml` file in one folder.
///
/// Names come only from the session and message numbers (`session-0001-message-01.eml`), never
/// from anything inside the capture, so nothing can be written outside the folder. DATA is
/// dot-unstuffed; BDAT chunks are joined as they are. A message the capture cut short is kept as
/// `session-0001-message-01.incomplete.eml`, holding the message up to the first byte the capture
/// missed: bytes are never joined across a hole.
public final class MessageFileWriter: SessionObserver {
    struct OpenMessage {
        var file: OutputFile
        var name: String
        /// A gap cut the message: nothing more is written to it.
        var cut: Bool
    }

    let folder: OutputFolder
    var session = 0
    /// The message file open in each session: sessions overlap in time, and so do their messages.
    var open: [Int: OpenMessage] = [:]
    var buffer: [UInt8] = []
    /// The names of the files written, in order (inside the folder).
    public private(set) var written: [String] = []
    public private(set) var error: FileError?

    public init(folder: OutputFolder) {
        self.folder = folder
    }

    /// `session-0001-message-01.eml`, or `....incomplete.eml` for a message cut short.
    public static func fileName(session: Int, message: Int, complete: Bool) -> String {
        let s = String(session), m = String(message)
        return "session-" + String(repeating: "0", count: max(0, 4 - s.count)) + s
            + "-message-" + String(repeating: "0", count: max(0, 2 - m.count)) + m
            + (complete ? ".eml" : ".incomplete.eml")
    }

    /// The open file of the current session's message.
    func file(message: Int, cut: Bool = false) -> OpenMessage? {
        if let file = open[session] { return file }
        let name = Self.fileName(session: session, message: message, complete: false)
        do {
            let message = OpenMessage(file: try folder.create(name), name: name, cut: cut)
            open[session] = message
            return message
        } catch {
            if self.error == nil { self.error = error }
            return nil
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer, to message: OpenMessage) {
        guard !message.cut else { return }
        do {
            try message.file.write(bytes)
        } catch {
            if self.error == nil { self.error = error }
        }
    }

    public func sessionStarted(_ info: SessionInfo) { session = info.id }
    public func select(session id: Int) { session = id }

    public func sessionEnded(_ info: SessionInfo, summary: SessionSummary, reason: SessionEndReason, time: Timestamp) {
        // The dialogue ends every message it began; this only guards against a file left open.
        open.removeValue(forKey: info.id)?.file.close()
    }

    public func messageBegan(message: Int, transfer: MessageTransfer, bytesMissingBefore: Bool, time: Timestamp) {
        // A message whose first bytes are missing has no prefix to keep: its file stays empty.
        _ = file(message: message, cut: bytesMissingBefore)
    }

    public func messageData(_ raw: UnsafeRawBufferPointer, message: Int, transfer: MessageTransfer, atLineStart: Bool, time: Timestamp) {
        guard let file = file(message: message), !file.cut else { return }
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
        file.file.close()
        open[session] = nil
        let finalName = Self.fileName(session: session, message: message, complete: complete && !file.cut)
        do {
            if finalName != file.name { try folder.rename(staged: file.name, to: finalName) }
            written.append(finalName)
        } catch {
            if self.error == nil { self.error = error }
        }
    }

    public func gap(side: Side, bytes: Int, time: Timestamp) {
        guard side == .client else { return }
        open[session]?.cut = true
    }

    public func command(_ raw: UnsafeRawBufferPointer, verb: SMTPVerb, flags: LineFlags, secret: Range<Int>?, time: Timestamp) {}

    public func reply(_ raw: UnsafeRawBufferPointer, lineCount: Int, code: Int?, context: ReplyContext, flags: LineFlags, time: Timestamp) {}
    public func authResponse(_ raw: UnsafeRawBufferPointer, secret: Range<Int>?, flags: LineFlags, time: Timestamp) {}
    public func fragment(_ raw: UnsafeRawBufferPointer, side: Side, secret: Bool, time: Timestamp) {}
    public func tlsStarted(_ start: TLSStart, time: Timestamp) {}
    public func encrypted(side: Side, bytes: Int, time: Timestamp) {}
}
