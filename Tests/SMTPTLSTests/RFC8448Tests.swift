import Crypto
import Foundation
import Testing
import SMTPCore
@testable import SMTPTLS

func h(_ s: String) -> [UInt8] { Hex.decode(s)! }

// RFC 8448 section 3 (Simple 1-RTT Handshake, TLS_AES_128_GCM_SHA256).
enum RFC8448 {
    static let suite = CipherSuite.named(0x1301)!
    static let clientRandom = h("cb 34 ec b1 e7 81 63 ba 1c 38 c6 da cb 19 6a 6d ff a2 1a 8d 99 12 ec 18 a2 ef 62 83 02 4d ec e7")
    static let cHsTraffic = h("b3 ed db 12 6e 06 7f 35 a7 80 b3 ab f4 5e 2d 8f 3b 1a 95 07 38 f5 2e 96 00 74 6a 0e 27 a5 5a 21")
    static let sHsTraffic = h("b6 7b 7d 69 0c c1 6c 4e 75 e5 42 13 cb 2d 37 b4 e9 c9 12 bc de d9 10 5d 42 be fd 59 d3 91 ad 38")
    static let cApTraffic = h("9e 40 64 6c e7 9a 7f 9d c0 5a f8 88 9b ce 65 52 87 5a fa 0b 06 df 00 87 f7 92 eb b7 c1 75 04 a5")
    static let sApTraffic = h("a1 1a f9 f0 55 31 f8 56 ad 47 11 6b 45 a9 50 32 82 04 b4 f4 4b fb 6b 3a 4b 4f 1f 3f cb 63 16 43")
    static let serverHello = h("""
        02 00 00 56 03 03 a6 af 06 a4 12 18 60 dc 5e 6e 60 24 9c d3 4c 95 93 0c 8a
        c5 cb 14 34 da c1 55 77 2e d3 e2 69 28 00 13 01 00 00 2e 00 33 00 24 00 1d
        00 20 c9 82 88 76 11 20 95 fe 66 76 2b db f7 c6 72 e1 56 d6 cc 25 3b 83 3d
        f1 dd 69 b1 b0 4e 75 1f 0f 00 2b 00 02 03 04
        """)
    static let clientFinishedRecord = h("""
        17 03 03 00 35 75 ec 4d c2 38 cc e6 0b 29 80 44 a7 1e 21 9c 56 cc 77 b0 51 7f e9 b9 3c 7a 4b fc
        44 d8 7f 38 f8 03 38 ac 98 fc 46 de b3 84 bd 1c ae ac ab 68 67 d7 26 c4 05 46
        """)
    static let serverTicketRecord = h("""
        17 03 03 00 de 3a 6b 8f 90 41 4a 97 d6 95 9c 34 87 68 0d e5 13 4a 2b 24
        0e 6c ff ac 11 6e 95 d4 1d 6a f8 f6 b5 80 dc f3 d1 1d 63 c7 58 db 28 9a
        01 59 40 25 2f 55 71 3e 06 1d c1 3e 07 88 91 a3 8e fb cf 57 53 ad 8e f1
        70 ad 3c 73 53 d1 6d 9d a7 73 b9 ca 7f 2b 9f a1 b6 c0 d4 a3 d0 3f 75 e0
        9c 30 ba 1e 62 97 2a c4 6f 75 f7 b9 81 be 63 43 9b 29 99 ce 13 06 46 15
        13 98 91 d5 e4 c5 b4 06 f1 6e 3f c1 81 a7 7c a4 75 84 00 25 db 2f 0a 77
        f8 1b 5a b0 5b 94 c0 13 46 75 5f 69 23 2c 86 51 9d 86 cb ee ac 87 aa c3
        47 d1 43 f9 60 5d 64 f6 50 db 4d 02 3e 70 e9 52 ca 49 fe 51 37 12 1c 74
        bc 26 97 68 7e 24 87 46 d6 df 35 30 05 f3 bc e1 86 96 12 9c 81 53 55 6b
        3b 6c 67 79 b3 7b f1 59 85 68 4f
        """)
    static let clientAppRecord = h("""
        17 03 03 00 43 a2 3f 70 54 b6 2c 94 d0 af fa fe 82 28 ba 55 cb ef ac ea
        42 f9 14 aa 66 bc ab 3f 2b 98 19 a8 a5 b4 6b 39 5b d5 4a 9a 20 44 1e 2b
        62 97 4e 1f 5a 62 92 a2 97 70 14 bd 1e 3d ea e6 3a ee bb 21 69 49 15 e4
        """)
    static let serverAppRecord = h("""
        17 03 03 00 43 2e 93 7e 11 ef 4a c7 40 e5 38 ad 36 00 5f c4 a4 69 32 fc
        32 25 d0 5f 82 aa 1b 36 e3 0e fa f9 7d 90 e6 df fc 60 2d cb 50 1a 59 a8
        fc c4 9c 4b f2 e5 f0 a2 1c 00 47 c2 ab f3 32 54 0d d0 32 e1 67 c2 95 5d
        """)
    static let clientAlertRecord = h("17 03 03 00 13 c9 87 27 60 65 56 66 b7 4d 7f f1 15 3e fd 6d b6 d0 b0 e3")
    static let serverAlertRecord = h("17 03 03 00 13 b5 8f d6 71 66 eb f5 99 d2 47 20 cf be 7e fa 7a 88 64 a9")
    static let payload = Array(UInt8(0)..<50)

    /// Opens one record with `protection`.
    static func open(_ protection: AEADProtection, _ bytes: [UInt8]) throws -> (type: UInt8, content: Data) {
        try bytes.withUnsafeBytes { try protection.openTLS13(TLSRecord.parse($0)!) }
    }
    static func protection(_ secret: [UInt8]) -> AEADProtection {
        let (key, iv) = TLS13.trafficKeys(suite, secret: secret)
        return AEADProtection(cipher: suite.cipher, key: key, iv: iv)
    }
}

@Test func hkdfLabelEncoding() {
    // "key info (13 octets)" and "iv info (12 octets)" in RFC 8448.
    #expect(TLS13.hkdfLabel("key", context: [], length: 16) == h("00 10 09 74 6c 73 31 33 20 6b 65 79 00"))
    #expect(TLS13.hkdfLabel("iv", context: [], length: 12) == h("00 0c 08 74 6c 73 31 33 20 69 76 00"))
}

@Test func trafficKeysMatchRFC8448() {
    let s = RFC8448.suite
    let c = TLS13.trafficKeys(s, secret: RFC8448.cHsTraffic)
    #expect(c.key == h("db fa a6 93 d1 76 2c 5b 66 6a f5 d9 50 25 8d 01"))
    #expect(c.iv == h("5b d3 c7 1b 83 6e 0b 76 bb 73 26 5f"))
    let sv = TLS13.trafficKeys(s, secret: RFC8448.sHsTraffic)
    #expect(sv.key == h("3f ce 51 60 09 c2 17 27 d0 f2 e4 e8 6e e4 03 bc"))
    #expect(sv.iv == h("5d 31 3e b2 67 12 76 ee 13 00 0b 30"))
    let ca = TLS13.trafficKeys(s, secret: RFC8448.cApTraffic)
    #expect(ca.key == h("17 42 2d da 59 6e d5 d9 ac d8 90 e3 c6 3f 50 51"))
    #expect(ca.iv == h("5b 78 92 3d ee 08 57 90 33 e5 23 d9"))
    let sa = TLS13.trafficKeys(s, secret: RFC8448.sApTraffic)
    #expect(sa.key == h("9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56"))
    #expect(sa.iv == h("cf 78 2b 88 dd 83 54 9a ad f1 e9 84"))
}

@Test func recordsOfRFC8448Open() throws {
    let client = RFC8448.protection(RFC8448.cHsTraffic)
    let fin = try RFC8448.open(client, RFC8448.clientFinishedRecord)
    #expect(fin.type == 22)
    #expect(Array(fin.content.prefix(4)) == [20, 0, 0, 32])          // Finished, 32-byte verify_data

    let clientApp = RFC8448.protection(RFC8448.cApTraffic)
    let app = try RFC8448.open(clientApp, RFC8448.clientAppRecord)
    #expect(app.type == 23 && Array(app.content) == RFC8448.payload)
    let alert = try RFC8448.open(clientApp, RFC8448.clientAlertRecord)   // sequence 1
    #expect(alert.type == 21 && Array(alert.content) == [1, 0])                     // close_notify

    let serverApp = RFC8448.protection(RFC8448.sApTraffic)
    let ticket = try RFC8448.open(serverApp, RFC8448.serverTicketRecord) // sequence 0
    #expect(ticket.type == 22 && ticket.content.first == 4)                          // NewSessionTicket
    let sapp = try RFC8448.open(serverApp, RFC8448.serverAppRecord)      // sequence 1
    #expect(Array(sapp.content) == RFC8448.payload)
    let salert = try RFC8448.open(serverApp, RFC8448.serverAlertRecord)  // sequence 2
    #expect(salert.type == 21 && Array(salert.content) == [1, 0])

    // Wrong sequence number -> tag check fails.
    let wrong = RFC8448.protection(RFC8448.cApTraffic)
    wrong.sequence = 1
    #expect(throws: (any Error).self) { try RFC8448.open(wrong, RFC8448.clientAppRecord) }
}

@Test func connectionSwitchesEpochsOnFinished() {
    let keyLog = KeyLog(text: """
        # RFC 8448 section 3
        CLIENT_HANDSHAKE_TRAFFIC_SECRET \(Hex.encode(RFC8448.clientRandom)) \(Hex.encode(RFC8448.cHsTraffic))
        SERVER_HANDSHAKE_TRAFFIC_SECRET \(Hex.encode(RFC8448.clientRandom)) \(Hex.encode(RFC8448.sHsTraffic))
        CLIENT_TRAFFIC_SECRET_0 \(Hex.encode(RFC8448.clientRandom)) \(Hex.encode(RFC8448.cApTraffic))
        SERVER_TRAFFIC_SECRET_0 \(Hex.encode(RFC8448.clientRandom)) \(Hex.encode(RFC8448.sApTraffic))
        """)
    #expect(keyLog.secrets.count == 1 && keyLog.secrets[RFC8448.clientRandom]?.count == 4)
    #expect(keyLog.warnings.isEmpty)
    // A minimal ClientHello carrying the RFC's random (the real one is 196 octets).
    let body: [UInt8] = [3, 3] + RFC8448.clientRandom + [0, 0, 2, 0x13, 0x01, 1, 0, 0, 0]
    let clientHello: [UInt8] = [22, 3, 1, 0, UInt8(body.count + 4), 1, 0, 0, UInt8(body.count)] + body
    let serverHello: [UInt8] = [22, 3, 3, 0, UInt8(RFC8448.serverHello.count)] + RFC8448.serverHello
    let ccs: [UInt8] = [20, 3, 3, 0, 1, 1]

    let store = KeyLogStore()
    store.add(keyLog)
    let tls = TLSDecryptor(keys: store)
    var described: [String] = []
    func feed(_ bytes: some Collection<UInt8>, _ side: Side) {
        Array(bytes).withUnsafeBytes {
            for event in tls.feed($0, from: side) {
                switch event {
                case .decrypting(let version, let suite): described.append("decrypting \(version) \(suite)")
                case .plaintext(let side, let data): described.append("\(side.name) \(Array(data))")
                case .alert(let side, let level, let description): described.append("alert \(side.name) \(level) \(description)")
                case .undecryptable(let side, let reason): described.append("undecryptable \(side?.name ?? "both") \(reason)")
                }
            }
        }
    }
    feed(clientHello, .client)
    feed(serverHello, .server)
    #expect(described == ["decrypting TLS 1.3 TLS_AES_128_GCM_SHA256"])
    // Client: compatibility CCS (skipped), Finished under handshake keys, then data under
    // application keys, then close_notify, in odd chunk sizes.
    let stream = ccs + RFC8448.clientFinishedRecord + RFC8448.clientAppRecord + RFC8448.clientAlertRecord
    for chunk in stride(from: 0, to: stream.count, by: 7) {
        feed(stream[chunk..<min(chunk + 7, stream.count)], .client)
    }
    #expect(described == [
        "decrypting TLS 1.3 TLS_AES_128_GCM_SHA256",
        "client \(RFC8448.payload)",
        "alert client 1 0",
    ])
    // A flipped byte in a record: the side stops, once, and says why.
    var broken = RFC8448.serverAppRecord
    broken[20] ^= 1
    feed(broken, .server)
    feed(RFC8448.serverAppRecord, .server)
    #expect(described.count == 4 && described[3].hasPrefix("undecryptable server a TLS record does not decrypt"))
}

@Test func noKeyForTheClientRandomIsSaidOnceForBothSides() {
    let store = KeyLogStore()
    store.add(KeyLog(text: "CLIENT_RANDOM \(String(repeating: "ab", count: 32)) \(String(repeating: "01", count: 48))\n"))
    let tls = TLSDecryptor(keys: store)
    let body: [UInt8] = [3, 3] + RFC8448.clientRandom + [0, 0, 2, 0x13, 0x01, 1, 0, 0, 0]
    let clientHello: [UInt8] = [22, 3, 1, 0, UInt8(body.count + 4), 1, 0, 0, UInt8(body.count)] + body
    let events = clientHello.withUnsafeBytes { tls.feed($0, from: .client) }
    guard events.count == 1, case .undecryptable(nil, let reason) = events[0] else {
        Issue.record("expected one undecryptable event, got \(events)")
        return
    }
    #expect(reason == "the key log has no secrets for client random cb34ecb1e78163ba…")
    #expect(tls.isFailed(.client) && tls.isFailed(.server))
}

@Test func helloRetryRequestRandomIsSHA256OfItsName() {
    #expect(Array(SHA256.hash(data: Array("HelloRetryRequest".utf8))) == ServerHelloInfo.helloRetryRequestRandom)
}

@Test func tls12PRFVector() {
    let out = TLS12.prf(.sha256, secret: h("9b be 43 6b a9 40 f0 17 b1 76 52 84 9a 71 db 35"), label: "test label",
                        seed: h("a0 ba 9f 93 6c da 31 18 27 a6 f7 96 ff d5 19 8c"), count: 100)
    #expect(out == h("""
        e3 f2 29 ba 72 7b e1 7b 8d 12 26 20 55 7c d4 53 c2 aa b2 1d 07 c3 d4 95 32 9b 52 d4 e6 1e db 5a
        6b 30 17 91 e9 0d 35 c9 c9 a4 6b 4e 14 ba f9 af 0f a0 22 f7 07 7d ef 17 ab fd 37 97 c0 56 4b ab
        4f bc 91 66 6e 9d ef 9b 97 fc e3 4f 79 67 89 ba a4 80 82 d1 22 ee 42 c5 a7 2e 5a 51 10 ff f7 01
        87 34 7b 66
        """))
}

@Test func keyLogParsing() {
    let r = String(repeating: "ab", count: 32)
    let text = "# comment\r\nCLIENT_RANDOM \(r) \(String(repeating: "01", count: 48))\rRSA 0011223344556677 \(String(repeating: "02", count: 48))\n\nCLIENT_RANDOM \(r.uppercased()) 00\nEXPORTER_SECRET \(r) 00\ngarbage\nCLIENT_TRAFFIC_SECRET_0 abcd \(r)\n"
    let log = KeyLog(text: text, name: "keys.txt")
    let random = [UInt8](repeating: 0xab, count: 32)
    #expect(log.secret(.clientRandom, clientRandom: random) == [UInt8](repeating: 1, count: 48))
    // Comments, empty lines and unknown labels are skipped; malformed lines are warnings with their number.
    #expect(log.warnings == [
        "keys.txt:5: CLIENT_RANDOM: the secret is not hex of the right length (48 bytes); line skipped",
        "keys.txt:7: not a key log line (expected LABEL CLIENT_RANDOM SECRET); line skipped",
        "keys.txt:8: CLIENT_TRAFFIC_SECRET_0: the client random is not 32 bytes of hex; line skipped",
    ])
}

@Test func decryptionSecretsBlock() throws {
    // SHB (little-endian) + DSB with a 5-byte TLS key log (padded to 8), read from a file.
    func le(_ v: UInt32) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24)] }
    let shb = le(0x0A0D0D0A) + le(28) + le(0x1A2B3C4D) + [1, 0, 0, 0] + [UInt8](repeating: 0xFF, count: 8) + le(28)
    let data = Array("ab cd".utf8)
    let dsb = le(10) + le(28) + le(0x544C534B) + le(5) + data + [0, 0, 0] + le(28)
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("smtptape-dsb-\(getpid()).pcapng").path
    _ = FileManager.default.createFile(atPath: path, contents: Data(shb + dsb))
    defer { try? FileManager.default.removeItem(atPath: path) }
    #expect(PcapngSecrets.keyLogs(inFile: path) == [data])
}

@Test func anUnsupportedSuiteIsNamedOnceForBothSides() {
    let store = KeyLogStore()
    store.add(KeyLog(text: "CLIENT_HANDSHAKE_TRAFFIC_SECRET \(Hex.encode(RFC8448.clientRandom)) \(Hex.encode(RFC8448.cHsTraffic))\n"))
    let tls = TLSDecryptor(keys: store)
    let body: [UInt8] = [3, 3] + RFC8448.clientRandom + [0, 0, 2, 0x13, 0x04, 1, 0, 0, 0]
    let clientHello: [UInt8] = [22, 3, 1, 0, UInt8(body.count + 4), 1, 0, 0, UInt8(body.count)] + body
    // RFC 8448's ServerHello with TLS_AES_128_CCM_SHA256 (0x1304) in place of its suite: the
    // suite follows type(1) length(3) version(2) random(32) session id length(1).
    var hello = RFC8448.serverHello
    hello[39] = 0x13
    hello[40] = 0x04
    let serverHello: [UInt8] = [22, 3, 3, 0, UInt8(hello.count)] + hello
    #expect(clientHello.withUnsafeBytes { tls.feed($0, from: .client) }.isEmpty)
    let events = serverHello.withUnsafeBytes { tls.feed($0, from: .server) }
    guard events.count == 1, case .undecryptable(nil, let reason) = events[0] else {
        Issue.record("expected one undecryptable event, got \(events)")
        return
    }
    #expect(reason == "the cipher suite TLS_AES_128_CCM_SHA256 (0x1304) is not supported")
    // Nothing more is said for the records that follow.
    let later: [UInt8] = [23, 3, 3, 0, 3, 1, 2, 3]
    #expect(later.withUnsafeBytes { tls.feed($0, from: .server) }.isEmpty)
}

@Test func aKeyLogFullOfNoiseGivesFiveWarningsAndACount() {
    var log = KeyLog(text: (1...12).map { "noise line \($0) with more fields" }.joined(separator: "\n"), name: "noise.bin")
    let warnings = log.takeWarnings()
    #expect(warnings.count == 6)
    #expect(warnings.first == "noise.bin:1: not a key log line (expected LABEL CLIENT_RANDOM SECRET); line skipped")
    #expect(warnings.last == "noise.bin: 7 more malformed line(s) skipped")
    #expect(log.takeWarnings().isEmpty, "taken once")
}
