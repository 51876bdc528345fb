// One TLS connection read from outside: the two directions' reassembled bytes in, plaintext out.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SMTPCore

/// What the decryptor found in the bytes it was given.
public enum TLSEvent {
    /// The server chose a version and suite and the key log holds the keys: what follows is
    /// decrypted. `version` and `cipherSuite` are IANA names (`TLS 1.3`, `TLS_AES_128_GCM_SHA256`).
    case decrypting(version: String, cipherSuite: String)
    /// Application data of one side, decrypted.
    case plaintext(Side, Data)
    /// A side closed TLS (`close_notify`) or sent a fatal alert.
    case alert(Side, level: UInt8, description: UInt8)
    /// The records of `side` (both sides when `nil`) cannot be read from here on
    /// (``TLSDecryptor/undecryptedBytes(_:)`` says how many bytes were left unread).
    case undecryptable(Side?, reason: String)
}

/// Decrypts one TLS connection (TLS 1.2 and 1.3) with secrets from a key log.
///
/// Bytes of each side are given in stream order, from the first byte of TLS (the ClientHello and
/// the ServerHello); the sides may interleave in any way, since records wait for what they need
/// (the ClientHello's random finds the keys, the ServerHello gives the suite). A side that cannot
/// go on (no key, an unsupported suite, a record that fails authentication, a gap) stops for good
/// and says why once.
public final class TLSDecryptor {
    let keys: KeyLogStore

    enum Protection {
        case none
        case tls13(AEADProtection)
        case gcm12(TLS12GCMProtection)
        case chacha12(AEADProtection)
        case cbc12(TLS12CBCProtection)
        /// The keys are not in the key log yet (a live capture reads it as it grows).
        case waiting13(KeyLog.Label, Epoch)
        case waiting12
    }

    /// TLS 1.3 epochs of one side.
    enum Epoch { case plaintext, early, handshake, application(Int) }

    /// One side's state: a class, so that the per-record work changes it in place (a struct
    /// would be copied, buffers and all, at every access through the side it is chosen by).
    final class SideState {
        var framer = RecordFramer()
        var handshake = HandshakeReassembler()
        var protection = Protection.none
        var epoch = Epoch.plaintext
        /// The current TLS 1.3 traffic secret (for KeyUpdate).
        var trafficSecret: [UInt8] = []
        /// Records waiting for the hellos (or, with a growing key log, for the keys), copied.
        var pending: [[UInt8]] = []
        var failed = false
        var decryptedAny = false
        /// Bytes given and not yet decrypted (counted as encrypted if the side fails).
        var undecrypted = 0
    }

    let client = SideState(), server = SideState()
    var clientHello: ClientHelloInfo?
    var serverHello: ServerHelloInfo?
    var suite: CipherSuite?
    var events: [TLSEvent] = []

    public init(keys: KeyLogStore) { self.keys = keys }

    /// Set with the (final) ServerHello: read on every record, so kept apart from it.
    var isTLS13 = false
    /// A ServerHello that is not a HelloRetryRequest was read: the suite is known.
    var helloDone = false

    /// Bytes of a side given to the decryptor and not decrypted (what a failed side leaves).
    public func undecryptedBytes(_ side: Side) -> Int { state(side).undecrypted }

    /// Whether a side can still be decrypted.
    public func isFailed(_ side: Side) -> Bool { side == .client ? client.failed : server.failed }

    /// Feeds the next bytes of one side; returns what they produced (valid until the next call).
    public func feed(_ bytes: UnsafeRawBufferPointer, from side: Side) -> [TLSEvent] {
        events.removeAll(keepingCapacity: true)
        guard !state(side).failed else { return events }
        state(side).undecrypted += bytes.count
        retryWaiting()
        drain(side, bytes)
        return events
    }

    /// Reports bytes of one side missing from the capture: records after the hole cannot be framed.
    public func gap(_ count: Int, from side: Side) -> [TLSEvent] {
        events.removeAll(keepingCapacity: true)
        guard !state(side).failed else { return events }
        fail(side, "\(count) bytes are missing from the capture inside the TLS stream, so the records after them cannot be read")
        return events
    }

    /// The connection ended: anything still waiting cannot be read.
    public func finish() -> [TLSEvent] {
        events.removeAll(keepingCapacity: true)
        retryWaiting()
        if suite == nil, !client.failed || !server.failed {
            if clientHello == nil {
                failBoth("the capture has no complete ClientHello")
            } else if !helloDone {
                failBoth("the capture has no complete ServerHello")
            }
        }
        for side in [Side.client, .server] where !state(side).failed && !state(side).pending.isEmpty {
            fail(side, "the key log has no secrets for client random \(randomPrefix) (looked up again at the end)")
        }
        for side in [Side.client, .server] where !state(side).failed && state(side).framer.buffered > 0 {
            fail(side, "the connection ended inside a TLS record (\(state(side).framer.buffered) bytes of it)")
        }
        return events
    }

    var randomPrefix: String {
        guard let random = clientHello?.random else { return "?" }
        return Hex.encode(random.prefix(8)) + "…"
    }

    func state(_ side: Side) -> SideState { side == .client ? client : server }


    /// Reads the records `bytes` completes (a record split across segments waits in the framer).
    func drain(_ side: Side, _ bytes: UnsafeRawBufferPointer) {
        let sideState = state(side)
        // The framer is taken out while records are handled, which may change the side's sideState.
        var framer = RecordFramer()
        swap(&framer, &sideState.framer)
        defer { swap(&framer, &sideState.framer) }
        do {
            try framer.records(in: bytes) { record in
                handle(record, from: side)
                return !sideState.failed
            }
        } catch {
            fail(side, "the stream is out of step with TLS records (not a record header: \(Hex.encode(error.header)))")
        }
    }

    func fail(_ side: Side, _ reason: String) {
        guard !state(side).failed else { return }
        state(side).failed = true
        state(side).pending.removeAll()
        events.append(.undecryptable(side, reason: reason))
    }

    func failBoth(_ reason: String) {
        guard !client.failed || !server.failed else { return }
        if client.failed { return fail(.server, reason) }
        if server.failed { return fail(.client, reason) }
        client.failed = true
        server.failed = true
        client.pending.removeAll()
        server.pending.removeAll()
        events.append(.undecryptable(nil, reason: reason))
    }

    /// Records whose keys were missing from a growing key log are tried again.
    var waitingForKeys = false

    func retryWaiting() {
        guard waitingForKeys else { return }
        waitingForKeys = false
        for side in [Side.client, .server] where !state(side).pending.isEmpty {
            let held = state(side).pending
            state(side).pending = []
            handleHeld(held, from: side)
        }
    }

    /// Handles records that waited, in order.
    func handleHeld(_ held: [[UInt8]], from side: Side) {
        for bytes in held {
            bytes.withUnsafeBytes { handle(TLSRecord.parse($0)!, from: side) }
        }
    }

    func hold(_ record: TLSRecord, from side: Side) {
        state(side).pending.append(record.bytes)
        if state(side).pending.count > 256 {
            fail(side, "more than 256 records waited for the TLS handshake")
        }
    }

    func handle(_ record: TLSRecord, from side: Side) {
        // Nothing can be looked up before the ClientHello (its random finds the keys), and the
        // client's protected records need the ServerHello's suite: they wait until then.
        let sideState = state(side)
        if (side == .server && clientHello == nil) || !sideState.pending.isEmpty {
            return hold(record, from: side)
        }
        // After its ClientHello, nothing of the client's can be read before the ServerHello (or
        // the second one after a HelloRetryRequest): its ChangeCipherSpec would be taken for
        // TLS 1.3's compatibility one, its protected records have no keys yet. A capture can give
        // them first (the sides' order between segments is only as good as the capture's).
        if side == .client, !helloDone, clientHello != nil {
            return hold(record, from: side)
        }
        if record.type == ContentType.changeCipherSpec.rawValue {
            // TLS 1.3: the compatibility CCS (RFC 8446 D.4) is never protected; skip it. Before a
            // ServerHello only a TLS 1.3 client sends one. TLS 1.2: the sender's keys start now.
            if isTLS13 || !helloDone { return }
            activateTLS12(side)
            return
        }
        switch sideState.protection {
        case .waiting13(let label, let epoch):
            install13(side, label: label, epoch: epoch)
        case .waiting12:
            activateTLS12(side)
        default:
            break
        }
        switch sideState.protection {
        case .none: plaintext(record, from: side)
        case .waiting12, .waiting13:
            waitingForKeys = true
            hold(record, from: side)
        default: decrypt(record, from: side)
        }
    }

    /// A protected record was decrypted (or skipped as it should be): its bytes are no longer
    /// counted as encrypted. Records in the clear (hellos, ChangeCipherSpec) stay counted, as
    /// they are without a key log.
    func settle(_ record: TLSRecord, _ side: Side) {
        state(side).undecrypted -= 5 + record.fragment.count
    }

    func plaintext(_ record: TLSRecord, from side: Side) {
        switch ContentType(rawValue: record.type) {
        case .handshake:
            state(side).handshake.append(record.fragment)
            handshakeMessages(from: side, encrypted: false)
        case .alert where record.fragment.count == 2:
            events.append(.alert(side, level: record.fragment[0], description: record.fragment[1]))
        case .applicationData where serverHello != nil:
            fail(side, "application data before the keys were set (a ChangeCipherSpec is missing)")
        default:
            fail(side, "a TLS record of type \(record.type) where a handshake record was expected")
        }
    }

    func handshakeMessages(from side: Side, encrypted: Bool) {
        while !state(side).failed, let (type, body) = state(side).handshake.next() {
            switch (side, HandshakeType(rawValue: type)) {
            case (.client, .clientHello) where !encrypted:
                do {
                    let hello = try HelloParser.clientHello(body)
                    // After a HelloRetryRequest the second ClientHello keeps the random (RFC 8446 4.1.2).
                    if clientHello == nil {
                        clientHello = hello
                        if keys.secrets(for: hello.random) == nil, !keys.followsFiles {
                            return failBoth("the key log has no secrets for client random \(randomPrefix)")
                        }
                    } else {
                        clientHello!.offersEarlyData = false
                    }
                } catch {
                    return failBoth("the ClientHello cannot be read (\(error.description))")
                }
                let held = server.pending
                server.pending = []
                handleHeld(held, from: .server)
            case (.server, .serverHello) where !encrypted:
                do {
                    try serverHelloReceived(try HelloParser.serverHello(body))
                } catch {
                    return failBoth("the ServerHello cannot be read (\(error))")
                }
            case (_, .finished) where encrypted && isTLS13:
                // Finished ends this side's handshake keys (it ends its record, RFC 8446 5.1).
                install13(side, label: side == .client ? .clientTrafficSecret0 : .serverTrafficSecret0, epoch: .application(0))
            case (.client, .endOfEarlyData) where isTLS13:
                install13(.client, label: .clientHandshakeTrafficSecret, epoch: .handshake)
            case (_, .keyUpdate) where isTLS13:
                // RFC 8446 4.6.3: the sender's next record uses the next generation of its secret.
                if case .application(let generation) = state(side).epoch, let suite {
                    let next = TLS13.nextTrafficSecret(suite, secret: state(side).trafficSecret)
                    let (key, iv) = TLS13.trafficKeys(suite, secret: next)
                    state(side).trafficSecret = next
                    state(side).protection = .tls13(AEADProtection(cipher: suite.cipher, key: key, iv: iv))
                    state(side).epoch = .application(generation + 1)
                }
            default:
                break
            }
        }
        if state(side).handshake.isOversized {
            fail(side, "a TLS handshake message longer than \(HandshakeReassembler.maxMessage) bytes")
        }
    }

    func serverHelloReceived(_ hello: ServerHelloInfo) throws {
        serverHello = hello
        // After a HelloRetryRequest the client answers with a second ClientHello in the clear (it
        // waits, held, with the rest); keys come with the real ServerHello.
        if hello.isHelloRetryRequest { return }
        let version = Self.versionName(hello.version)
        guard hello.version == 0x0303 || hello.version == 0x0304 else {
            return failBoth("\(version) is not supported (TLS 1.2 and 1.3 are)")
        }
        isTLS13 = hello.version == 0x0304
        helloDone = true
        guard let suite = CipherSuite.named(hello.cipherSuite), suite.isTLS13 == (hello.version == 0x0304) else {
            return failBoth("the cipher suite \(CipherSuite.describe(hello.cipherSuite)) is not supported")
        }
        self.suite = suite
        if isTLS13 {
            install13(.server, label: .serverHandshakeTrafficSecret, epoch: .handshake)
            if clientHello?.offersEarlyData == true, keys.secret(.clientEarlyTrafficSecret, clientRandom: clientHello!.random) != nil {
                install13(.client, label: .clientEarlyTrafficSecret, epoch: .early)
            } else {
                install13(.client, label: .clientHandshakeTrafficSecret, epoch: .handshake)
            }
        } else if !keys.followsFiles, keys.secret(.clientRandom, clientRandom: clientHello?.random ?? []) == nil {
            return failBoth("the key log has no CLIENT_RANDOM line for client random \(randomPrefix)")
        }
        guard !client.failed || !server.failed else { return }
        events.append(.decrypting(version: version, cipherSuite: suite.name))
        let held = client.pending
        client.pending = []
        handleHeld(held, from: .client)
    }

    static func versionName(_ version: UInt16) -> String {
        switch version {
        case 0x0304: "TLS 1.3"
        case 0x0303: "TLS 1.2"
        case 0x0302: "TLS 1.1"
        case 0x0301: "TLS 1.0"
        case 0x0300: "SSL 3.0"
        default: "TLS version 0x" + String(version, radix: 16)
        }
    }

    func install13(_ side: Side, label: KeyLog.Label, epoch: Epoch) {
        guard let suite, let random = clientHello?.random else { return }
        guard let secret = keys.secret(label, clientRandom: random) else {
            if keys.followsFiles {
                state(side).protection = .waiting13(label, epoch)
                return
            }
            if side == .server, label == .serverHandshakeTrafficSecret, keys.secrets(for: random) == nil {
                return failBoth("the key log has no secrets for client random \(randomPrefix)")
            }
            fail(side, "the key log has no \(label.rawValue) line for client random \(randomPrefix)")
            return
        }
        let (key, iv) = TLS13.trafficKeys(suite, secret: secret)
        state(side).protection = .tls13(AEADProtection(cipher: suite.cipher, key: key, iv: iv))
        state(side).epoch = epoch
        state(side).trafficSecret = secret
    }

    func activateTLS12(_ side: Side) {
        guard let suite, let hello = clientHello, let serverHello else {
            return fail(side, "a ChangeCipherSpec before the hellos")
        }
        guard let master = keys.secret(.clientRandom, clientRandom: hello.random) else {
            if keys.followsFiles {
                state(side).protection = .waiting12
                return
            }
            return failBoth("the key log has no CLIENT_RANDOM line for client random \(randomPrefix)")
        }
        let block = TLS12.keyBlock(suite, masterSecret: master, clientRandom: hello.random, serverRandom: serverHello.random)
        let isClient = side == .client
        let key = isClient ? block.clientKey : block.serverKey
        let iv = isClient ? block.clientIV : block.serverIV
        let protection: Protection
        switch suite.cipher {
        case .aes128GCM, .aes256GCM:
            protection = .gcm12(TLS12GCMProtection(cipher: suite.cipher, key: key, salt: iv))
        case .chaCha20Poly1305:
            protection = .chacha12(AEADProtection(cipher: suite.cipher, key: key, iv: iv))
        case .aes128CBC, .aes256CBC:
            protection = .cbc12(TLS12CBCProtection(key: key, macKey: isClient ? block.clientMACKey : block.serverMACKey,
                                                   mac: suite.mac, encryptThenMAC: serverHello.encryptThenMAC))
        }
        state(side).protection = protection
    }

    func decrypt(_ record: TLSRecord, from side: Side) {
        var type = record.type
        let content: Data
        do {
            switch state(side).protection {
            case .none, .waiting12, .waiting13:
                return
            case .tls13(let protection):
                guard record.type == ContentType.applicationData.rawValue else {
                    // A plaintext alert sent before the peer had its keys.
                    return plaintext(record, from: side)
                }
                do {
                    let (inner, data) = try protection.openTLS13(record)
                    type = inner
                    content = data
                } catch where side == .client && clientHello?.offersEarlyData == true && !state(side).decryptedAny {
                    // 0-RTT offered and rejected (or its secret not logged): the server skips
                    // early records it cannot read (RFC 8446 4.2.10), and so do we.
                    settle(record, side)
                    return
                }
            case .gcm12(let protection):
                content = try protection.open(record)
            case .chacha12(let protection):
                content = try protection.openTLS12ChaCha(record)
            case .cbc12(let protection):
                content = try protection.open(record)
            }
        } catch {
            let what = (error as? TLSParseError)?.description ?? "authentication failed"
            fail(side, "a TLS record does not decrypt with the logged secrets (\(what)); the key log may belong to another connection")
            return
        }
        let sideState = state(side)
        sideState.undecrypted -= 5 + record.fragment.count
        sideState.decryptedAny = true
        switch ContentType(rawValue: type) {
        case .applicationData:
            if !content.isEmpty { events.append(.plaintext(side, content)) }
        case .handshake:
            sideState.handshake.append(content)
            handshakeMessages(from: side, encrypted: true)
        case .alert where content.count == 2:
            events.append(.alert(side, level: content[content.startIndex], description: content[content.startIndex + 1]))
        default:
            break
        }
    }
}
