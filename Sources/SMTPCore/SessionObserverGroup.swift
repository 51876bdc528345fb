/// Passes every event on to several observers, in order: one session's dialogue recorded as a
/// scenario and rendered as a transcript at once.
public final class SessionObserverGroup: SessionObserver {
    public let observers: [any SessionObserver]

    public init(_ observers: [any SessionObserver]) {
        self.observers = observers
    }

    public func sessionStarted(_ info: SessionInfo) { for o in observers { o.sessionStarted(info) } }
    public func select(session id: Int) { for o in observers { o.select(session: id) } }
    public func sessionEnded(_ info: SessionInfo, summary: SessionSummary, reason: SessionEndReason, time: Timestamp) {
        for o in observers { o.sessionEnded(info, summary: summary, reason: reason, time: time) }
    }
    public func command(_ raw: UnsafeRawBufferPointer, verb: SMTPVerb, flags: LineFlags, secret: Range<Int>?, time: Timestamp) {
        for o in observers { o.command(raw, verb: verb, flags: flags, secret: secret, time: time) }
    }
    public func reply(_ raw: UnsafeRawBufferPointer, lineCount: Int, code: Int?, context: ReplyContext, flags: LineFlags, time: Timestamp) {
        for o in observers { o.reply(raw, lineCount: lineCount, code: code, context: context, flags: flags, time: time) }
    }
    public func authResponse(_ raw: UnsafeRawBufferPointer, secret: Range<Int>?, flags: LineFlags, time: Timestamp) {
        for o in observers { o.authResponse(raw, secret: secret, flags: flags, time: time) }
    }
    public func messageBegan(message: Int, transfer: MessageTransfer, bytesMissingBefore: Bool, time: Timestamp) {
        for o in observers { o.messageBegan(message: message, transfer: transfer, bytesMissingBefore: bytesMissingBefore, time: time) }
    }
    public func messageData(_ raw: UnsafeRawBufferPointer, message: Int, transfer: MessageTransfer, atLineStart: Bool, time: Timestamp) {
        for o in observers { o.messageData(raw, message: message, transfer: transfer, atLineStart: atLineStart, time: time) }
    }
    public func messageEnd(_ raw: UnsafeRawBufferPointer, message: Int, transfer: MessageTransfer, size: Int, complete: Bool, time: Timestamp) {
        for o in observers { o.messageEnd(raw, message: message, transfer: transfer, size: size, complete: complete, time: time) }
    }
    public func fragment(_ raw: UnsafeRawBufferPointer, side: Side, secret: Bool, time: Timestamp) {
        for o in observers { o.fragment(raw, side: side, secret: secret, time: time) }
    }
    public func gap(side: Side, bytes: Int, time: Timestamp) { for o in observers { o.gap(side: side, bytes: bytes, time: time) } }
    public func tlsStarted(_ start: TLSStart, time: Timestamp) { for o in observers { o.tlsStarted(start, time: time) } }
    public func encrypted(side: Side, bytes: Int, time: Timestamp) { for o in observers { o.encrypted(side: side, bytes: bytes, time: time) } }
    public func tlsUndecryptable(side: Side?, reason: String, time: Timestamp) { for o in observers { o.tlsUndecryptable(side: side, reason: reason, time: time) } }
}
