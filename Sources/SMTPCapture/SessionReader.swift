import SMTPCore
import SMTPTLS

/// A session's dialogue and, once TLS begins on a capture read with a key log, the decryptor that
/// reads both sides' records and passes their plaintext to the dialogue.
///
/// Without a key log (or before TLS) the bytes go straight to the dialogue. When the dialogue
/// says TLS began, every later byte goes to the decryptor instead; a side the decryptor cannot
/// read (no key, an unsupported suite, a record that fails authentication, a gap) goes back to the
/// dialogue, which counts its bytes as encrypted, as without a key log.
struct SessionReader {
    var dialogue: SMTPDialogue
    let keys: KeyLogStore?
    var tls: TLSDecryptor?
    /// What could not be decrypted, a line per side (for the file's warnings).
    var tlsFailures: [String] = []

    init(_ dialogue: SMTPDialogue = SMTPDialogue(), keys: KeyLogStore? = nil) {
        self.dialogue = dialogue
        self.keys = keys
        if keys != nil { self.dialogue.decryptsTLS = true }
    }

    var summary: SessionSummary { dialogue.summary }

    @inline(__always)
    mutating func receive(_ bytes: UnsafeRawBufferPointer, from side: Side, time: Timestamp, observer: some SMTPDialogueObserver) {
        guard let tls else {
            dialogue.receive(bytes, from: side, time: time, observer: observer)
            if keys != nil, dialogue.tlsHandedOff { startDecrypting(time: time, observer: observer) }
            return
        }
        if tls.isFailed(side) {
            dialogue.receive(bytes, from: side, time: time, observer: observer)
        } else {
            handle(tls.feed(bytes, from: side), tls: tls, time: time, observer: observer)
        }
    }

    mutating func receiveGap(_ count: Int, from side: Side, time: Timestamp, observer: some SMTPDialogueObserver) {
        guard let tls else {
            dialogue.receiveGap(count, from: side, time: time, observer: observer)
            if keys != nil, dialogue.tlsHandedOff { startDecrypting(time: time, observer: observer) }
            return
        }
        if !tls.isFailed(side) {
            handle(tls.gap(count, from: side), tls: tls, time: time, observer: observer)
        }
        // The side is now read as encrypted: the hole is counted there.
        dialogue.receiveGap(count, from: side, time: time, observer: observer)
    }

    mutating func finish(time: Timestamp, observer: some SMTPDialogueObserver) {
        if keys != nil {
            dialogue.settleTLS(time: time, observer: observer)
            if tls == nil, dialogue.tlsHandedOff { startDecrypting(time: time, observer: observer) }
            if let tls { handle(tls.finish(), tls: tls, time: time, observer: observer) }
        }
        dialogue.finish(time: time, observer: observer)
    }

    /// TLS began: the bytes the dialogue kept go to a new decryptor, client first (its ClientHello
    /// finds the keys).
    mutating func startDecrypting(time: Timestamp, observer: some SMTPDialogueObserver) {
        guard let keys else { return }
        let tls = TLSDecryptor(keys: keys)
        self.tls = tls
        for side in [Side.client, .server] {
            let (bytes, gap) = dialogue.takeTLSBytes(from: side)
            if !bytes.isEmpty, !tls.isFailed(side) {
                let events = bytes.withUnsafeBytes { tls.feed($0, from: side) }
                handle(events, tls: tls, time: time, observer: observer)
            }
            if gap > 0 { receiveGap(gap, from: side, time: time, observer: observer) }
        }
    }

    mutating func handle(_ events: [TLSEvent], tls: TLSDecryptor, time: Timestamp, observer: some SMTPDialogueObserver) {
        for event in events {
            switch event {
            case .decrypting(let version, let suite):
                dialogue.tlsDecrypting(version: version, cipherSuite: suite, observer: observer)
            case .plaintext(let side, let data):
                data.withUnsafeBytes { _ = dialogue.receive($0, from: side, time: time, observer: observer) }
            case .alert:
                break
            case .undecryptable(let side, let reason):
                tlsFailures.append("cannot decrypt \(side.map { "the \($0.name)'s TLS records" } ?? "TLS"): \(reason)")
                let client = side != .server ? tls.undecryptedBytes(.client) : 0
                let server = side != .client ? tls.undecryptedBytes(.server) : 0
                dialogue.tlsUndecryptable(side, reason: reason, bytes: (client, server), time: time, observer: observer)
            }
        }
    }
}
