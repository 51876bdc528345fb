import Foundation
import SMTPCapture
import SMTPCore
import SMTPScenario
import SMTPTLS
import SMTPTranscript
import Testing

/// The captures in `Captures/` made over TLS by real clients and servers that wrote their secrets
/// to a key log (`NAME.keys`): read with it, every byte after STARTTLS (or from the first byte,
/// for implicit TLS) is what tshark decrypts from the same capture and key log, and the dialogue
/// is what the client logged.
@Suite struct TLSDecryptionTests {
    static let keyed = Fixtures.captureNames.filter {
        FileManager.default.fileExists(atPath: Fixtures.captures.appendingPathComponent($0 + ".keys").path)
    }

    static func keys(_ name: String) -> KeyLogStore { Fixtures.keys(for: [Fixtures.capture(name)])! }

    /// JSON Lines of a capture read with a key log.
    static func json(_ path: String, keys: KeyLogStore?, showSecrets: Bool = false) throws -> [[String: Any]] {
        let text = try Fixtures.render([path], keys: keys) { JSONTranscriptWriter(output: $0, showSecrets: showSecrets) }
        return try Data(text.utf8).split(separator: 0x0A).map {
            try JSONSerialization.jsonObject(with: Data($0)) as! [String: Any]
        }
    }

    /// Per side, the bytes of the events after `tls_start` (their `raw`): the decrypted streams.
    static func decryptedStreams(_ events: [[String: Any]]) -> (client: [UInt8], server: [UInt8], start: [String: Any]?) {
        var client: [UInt8] = [], server: [UInt8] = []
        var start: [String: Any]?
        for event in events {
            if event["type"] as? String == "tls_start" { start = event; continue }
            guard start != nil, let raw = event["raw"] as? String, let from = event["from"] as? String else { continue }
            let bytes = [UInt8](Data(base64Encoded: raw)!)
            if from == "client" { client += bytes } else { server += bytes }
        }
        return (client, server, start)
    }

    /// `tshark -z follow,tls,raw`: the decrypted bytes of the first connection, per side (the
    /// node on an SMTP port is the server).
    static func tsharkStreams(_ capture: String, keyLog: String?) throws -> (client: [UInt8], server: [UInt8]) {
        var arguments = ["tshark", "-r", capture, "-q", "-z", "follow,tls,raw,0"]
        if let keyLog { arguments.insert(contentsOf: ["-o", "tls.keylog_file:" + keyLog], at: 3) }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TestFailure("tshark failed (is it installed? scripts/install-prerequisites.sh --clients installs it)")
        }
        var client: [UInt8] = [], server: [UInt8] = []
        var inBody = false
        var nodeZeroIsServer = false
        for line in String(decoding: output, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("Node 0:") {
                let port = line.split(separator: ":").last.map { String($0) } ?? ""
                nodeZeroIsServer = ["25", "465", "587", "2525"].contains(port)
                continue
            }
            if line.hasPrefix("Node 1:") { inBody = true; continue }
            if line.hasPrefix("=====") { inBody = false; continue }
            guard inBody, !line.isEmpty else { continue }
            let isServer = line.hasPrefix("\t") != nodeZeroIsServer
            let hex = line.trimmingCharacters(in: .whitespaces)
            guard let bytes = Hex.decode(hex) else { throw TestFailure("tshark printed a line that is not hex: \(line)") }
            if isServer { server += bytes } else { client += bytes }
        }
        return (client, server)
    }

    struct TestFailure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    @Test func theCapturesCoverEverySuiteAndBothModes() throws {
        var seen: Set<String> = []
        for name in Self.keyed {
            let (_, _, start) = Self.decryptedStreams(try Self.json(Fixtures.capture(name), keys: Self.keys(name)))
            let start_ = try #require(start, "\(name) has TLS")
            #expect(start_["state"] as? String == "decrypted", "\(name)")
            seen.insert("\(start_["version"] as? String ?? "?") \(start_["cipher_suite"] as? String ?? "?") \(start_["mode"] as? String ?? "?")")
        }
        let suites = Set(seen.map { $0.split(separator: " ").dropLast().joined(separator: " ") })
        for suite in ["TLS 1.3 TLS_AES_128_GCM_SHA256", "TLS 1.3 TLS_AES_256_GCM_SHA384", "TLS 1.3 TLS_CHACHA20_POLY1305_SHA256",
                      "TLS 1.2 TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS 1.2 TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                      "TLS 1.2 TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"] {
            #expect(suites.contains(suite), "a capture with \(suite)")
        }
        #expect(suites.contains { $0.contains("CBC") }, "a CBC capture")
        #expect(seen.contains { $0.hasSuffix("starttls") } && seen.contains { $0.hasSuffix("implicit") })
        // Encrypt-then-MAC and MAC-then-encrypt, a HelloRetryRequest and KeyUpdates, told by the
        // capture names the script gives them (it checks each with tshark).
        #expect(Self.keyed.contains { $0.contains("-etm") } && Self.keyed.contains { $0.contains("-mte") })
        #expect(Self.keyed.contains { $0.contains("-hrr") } && Self.keyed.contains { $0.contains("-keyupdate") })
    }

    /// Every decrypted byte, per direction, is what tshark decrypts from the same capture and key log.
    @Test(arguments: keyed)
    func decryptedBytesAreTsharks(_ name: String) throws {
        let capture = Fixtures.capture(name)
        let mine = Self.decryptedStreams(try Self.json(capture, keys: Self.keys(name), showSecrets: true))
        let theirs = try Self.tsharkStreams(capture, keyLog: Fixtures.captures.appendingPathComponent(name + ".keys").path)
        #expect(!mine.client.isEmpty && !mine.server.isEmpty)
        #expect(mine.client == theirs.client, "client → server bytes of \(name): \(mine.client.count) against tshark's \(theirs.client.count)")
        #expect(mine.server == theirs.server, "server → client bytes of \(name): \(mine.server.count) against tshark's \(theirs.server.count)")
    }

    /// Read with its key log, a TLS capture's scenario is complete: it goes on past STARTTLS.
    @Test(arguments: keyed)
    func scenariosAreComplete(_ name: String) throws {
        let recorder = ScenarioRecorder()
        var scenarios: [Scenario] = []
        recorder.onScenario = { _, scenario in scenarios.append(scenario) }
        let extractor = SMTPExtractor(options: ExtractionOptions(keys: Self.keys(name)), observer: recorder)
        _ = extractor.read(file: Fixtures.capture(name))
        let scenario = try #require(scenarios.first)
        #expect(scenarios.count == 1)
        let session = try #require(scenario.sessions.first)
        if name.contains("smtps") {
            #expect(session.implicitTLS)
        } else {
            #expect(session.steps.contains { $0.startsTLS }, "tls: start on the STARTTLS step")
        }
        #expect(session.steps.contains { if case .message = $0.kind { true } else { false } }, "the message inside TLS is a step")
        #expect(session.steps.last?.verb == .quit)
        if !name.hasPrefix("curl"), !name.hasPrefix("openssl") {
            // curl and s_client close without waiting for the 221: the scenario says so; the others are whole.
            #expect(session.incomplete == nil, "\(session.incomplete ?? "")")
        }
    }

    @Test func authInsideTLSIsRedacted() throws {
        let name = try #require(Self.keyed.first { $0.contains("auth") }, "a capture with AUTH inside TLS")
        let text = try Fixtures.render([Fixtures.capture(name)]) { TextTranscriptRenderer(output: $0, data: .none) }
        let json = try Fixtures.render([Fixtures.capture(name)]) { JSONTranscriptWriter(output: $0) }
        #expect(text.contains("AUTH") && text.contains(Secrets.placeholder))
        // The script's credentials: alice / wonderland.
        for secret in ["AGFsaWNlAHdvbmRlcmxhbmQ=", "d29uZGVybGFuZA==", "wonderland"] {
            #expect(!text.contains(secret) && !json.contains(secret))
            #expect(!json.contains(Data(secret.utf8).base64EncodedString()))
        }
    }

    // MARK: When it cannot decrypt

    /// The TCP payloads of a capture's one connection, in capture order, with who sent them.
    static func payloads(_ name: String) throws -> [(fromClient: Bool, bytes: [UInt8])] {
        let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Fixtures.capture(name))))
        var offset = 24
        var result: [(Bool, [UInt8])] = []
        var clientPort: UInt16?
        while offset + 16 <= data.count {
            let length = Int(data[offset + 8]) | Int(data[offset + 9]) << 8 | Int(data[offset + 10]) << 16 | Int(data[offset + 11]) << 24
            let packet = Array(data[(offset + 16)..<(offset + 16 + length)])
            offset += 16 + length
            // Ethernet (tcpdump on lo), IPv4, TCP.
            guard packet.count > 34, packet[12] == 0x08, packet[13] == 0x00 else { continue }
            let ip = 14, ipLength = Int(packet[ip] & 0x0F) * 4
            let total = Int(packet[ip + 2]) << 8 | Int(packet[ip + 3])
            let tcp = ip + ipLength, tcpLength = Int(packet[tcp + 12] >> 4) * 4
            let source = UInt16(packet[tcp]) << 8 | UInt16(packet[tcp + 1])
            if packet[tcp + 13] & 0x12 == 0x02 { clientPort = source }
            let payload = Array(packet[(tcp + tcpLength)..<(ip + total)])
            if !payload.isEmpty { result.append((source == clientPort, payload)) }
        }
        return result
    }

    /// The connection again, as a synthetic capture, with `change` applied to its payloads.
    static func rebuilt(_ name: String, _ change: (Int, Bool, inout [UInt8], inout Conversation) -> Bool) throws -> URL {
        var conversation = Conversation(server: .v4(192, 0, 2, 25, port: 587))
        conversation.handshake()
        for (index, (fromClient, bytes)) in try payloads(name).enumerated() {
            var bytes = bytes
            if !change(index, fromClient, &bytes, &conversation) { continue }
            if fromClient { conversation.client(bytes) } else { conversation.server(bytes) }
        }
        let url = Fixtures.temporaryFile("tls-\(name)-\(UUID().uuidString).pcap")
        try conversation.pcap.write(to: url)
        return url
    }

    static let starttlsCapture = "curl-aiosmtpd-tls13-aes128-starttls"

    @Test func withoutTheKeysOfTheSessionItSaysSoOnceAndCountsAsWithoutAKeyLog() throws {
        // Another session's key log: the client random is not in it.
        let other = try #require(Self.keyed.first { $0 != Self.starttlsCapture })
        let events = try Self.json(Fixtures.capture(Self.starttlsCapture), keys: Self.keys(other))
        let plain = try Self.json(Fixtures.capture(Self.starttlsCapture), keys: nil)
        let failures = events.filter { $0["type"] as? String == "tls_undecryptable" }
        #expect(failures.count == 1)
        #expect((failures.first?["reason"] as? String)?.hasPrefix("the key log has no secrets for client random ") == true)
        #expect(failures.first?["from"] == nil, "both sides at once")
        let streams = Self.decryptedStreams(events)
        #expect(streams.start?["state"] as? String == "encrypted")
        #expect(streams.client.isEmpty && streams.server.isEmpty, "nothing after TLS is shown as plaintext")
        let end = try #require(events.last), plainEnd = try #require(plain.last)
        #expect(end["encrypted_bytes"] as? [String: Int] == plainEnd["encrypted_bytes"] as? [String: Int])
        // Every event before TLS is the same as without a key log.
        #expect(events.count == plain.count + 1)
    }

    @Test func aRecordThatFailsAuthenticationStopsItsSideAndNothingFalseIsShown() throws {
        let payloads = try Self.payloads(Self.starttlsCapture)
        // The client's largest TLS payload (its message), one bit flipped in its last byte.
        let target = try #require(payloads.indices.filter { payloads[$0].fromClient && payloads[$0].bytes.first == 0x17 }.max { payloads[$0].bytes.count < payloads[$1].bytes.count })
        let url = try Self.rebuilt(Self.starttlsCapture) { index, _, bytes, _ in
            if index == target { bytes[bytes.count - 1] ^= 0x01 }
            return true
        }
        defer { try? FileManager.default.removeItem(at: url) }
        let intact = Self.decryptedStreams(try Self.json(Fixtures.capture(Self.starttlsCapture), keys: Self.keys(Self.starttlsCapture)))
        let events = try Self.json(url.path, keys: Self.keys(Self.starttlsCapture))
        let failures = events.filter { $0["type"] as? String == "tls_undecryptable" }
        #expect(failures.count == 1)
        #expect(failures.first?["from"] as? String == "client")
        #expect((failures.first?["reason"] as? String)?.contains("does not decrypt") == true)
        let damaged = Self.decryptedStreams(events)
        #expect(damaged.server == intact.server, "the server's side is unharmed")
        #expect(damaged.client.count < intact.client.count && intact.client.starts(with: damaged.client), "the client's plaintext stops before the bad record")
    }

    @Test func aGapInsideTheEncryptedStreamStopsThatSide() throws {
        let payloads = try Self.payloads(Self.starttlsCapture)
        let target = try #require(payloads.indices.last { !payloads[$0].fromClient && payloads[$0].bytes.first == 0x17 })
        let url = try Self.rebuilt(Self.starttlsCapture) { index, _, bytes, conversation in
            guard index == target else { return true }
            conversation.lostServer(String(repeating: "x", count: bytes.count))
            return false
        }
        defer { try? FileManager.default.removeItem(at: url) }
        let events = try Self.json(url.path, keys: Self.keys(Self.starttlsCapture))
        let failures = events.filter { $0["type"] as? String == "tls_undecryptable" }
        #expect(failures.count == 1)
        #expect(failures.first?["from"] as? String == "server")
        #expect((failures.first?["reason"] as? String)?.contains("missing from the capture") == true)
        let end = try #require(events.last)
        #expect((end["gap_bytes"] as? Int ?? 0) == payloads[target].bytes.count)
    }

    // MARK: The decryptor alone, on the captures' TLS streams

    /// The TLS bytes of each side of a capture (from the first TLS record on, as the dialogue
    /// hands them over), from its TCP payloads in order.
    static func tlsStreams(_ name: String) throws -> (client: [UInt8], server: [UInt8]) {
        var client: [UInt8] = [], server: [UInt8] = []
        for (fromClient, bytes) in try payloads(name) {
            if fromClient { client += bytes } else { server += bytes }
        }
        // Implicit TLS starts at once; STARTTLS after the client's STARTTLS line and the server's
        // 220 to it.
        func tail(_ stream: [UInt8], after marker: String) -> [UInt8] {
            let needle = Array(marker.utf8)
            guard let start = stream.firstIndex(of: 0x16) else { return [] }
            if needle.isEmpty { return Array(stream[start...]) }
            var index = 0
            while index + needle.count <= stream.count {
                if Array(stream[index..<(index + needle.count)]) == needle, let end = stream[index...].firstIndex(of: 0x0A) {
                    return Array(stream[(end + 1)...])
                }
                index += 1
            }
            return []
        }
        if client.first == 0x16 { return (client, server) }
        return (tail(client, after: "STARTTLS"), tail(server, after: "220 Ready to start TLS"))
    }

    /// Feeds both sides in pieces and returns each side's plaintext and the failures.
    static func decrypt(_ streams: (client: [UInt8], server: [UInt8]), keys: KeyLogStore, using random: inout some RandomNumberGenerator,
                        largest: Int) -> (client: [UInt8], server: [UInt8], failures: [String]) {
        let decryptor = TLSDecryptor(keys: keys)
        var result: (client: [UInt8], server: [UInt8], failures: [String]) = ([], [], [])
        var offsets = (client: 0, server: 0)
        func take(_ events: [TLSEvent]) {
            for event in events {
                switch event {
                case .plaintext(.client, let data): result.client += data
                case .plaintext(.server, let data): result.server += data
                case .undecryptable(let side, let reason): result.failures.append("\(side?.name ?? "both"): \(reason)")
                default: break
                }
            }
        }
        // The client's ClientHello comes first, as on the wire; then the sides interleave at random.
        while offsets.client < streams.client.count || offsets.server < streams.server.count {
            let clientLeft = streams.client.count - offsets.client, serverLeft = streams.server.count - offsets.server
            let fromClient = serverLeft == 0 || (clientLeft > 0 && (offsets.client == 0 || Bool.random(using: &random)))
            let stream = fromClient ? streams.client : streams.server
            let offset = fromClient ? offsets.client : offsets.server
            let count = min(Int.random(in: 1...largest, using: &random), stream.count - offset)
            stream[offset..<(offset + count)].withUnsafeBytes { take(decryptor.feed($0, from: fromClient ? .client : .server)) }
            if fromClient { offsets.client += count } else { offsets.server += count }
        }
        take(decryptor.finish())
        return result
    }

    /// Any chunking of either side, and any interleaving of the two, gives the same plaintext:
    /// records split across pieces, handshake messages split across records, records held for
    /// the hellos.
    @Test(arguments: keyed)
    func anyChunkingGivesTheSamePlaintext(_ name: String) throws {
        let streams = try Self.tlsStreams(name)
        var whole = SplitMix64(seed: 1)
        let reference = Self.decrypt(streams, keys: Self.keys(name), using: &whole, largest: 1 << 20)
        #expect(reference.failures.isEmpty, "\(reference.failures)")
        #expect(!reference.client.isEmpty && !reference.server.isEmpty)
        for seed in 1...40 as ClosedRange<UInt64> {
            var random = SplitMix64(seed: seed)
            let pieces = Self.decrypt(streams, keys: Self.keys(name), using: &random, largest: seed % 4 == 0 ? 3 : 700)
            #expect(pieces.failures.isEmpty, "seed \(seed): \(pieces.failures)")
            #expect(pieces.client == reference.client && pieces.server == reference.server, "seed \(seed)")
        }
    }

    /// A byte changed anywhere in either side's TLS stream never yields bytes that were not sent:
    /// each side's plaintext is a prefix of the true one, and a side that stops says why.
    @Test(arguments: keyed)
    func aChangedByteNeverYieldsFalsePlaintext(_ name: String) throws {
        let streams = try Self.tlsStreams(name)
        var whole = SplitMix64(seed: 1)
        let truth = Self.decrypt(streams, keys: Self.keys(name), using: &whole, largest: 1 << 20)
        var random = SplitMix64(seed: 7)
        for round in 0..<60 {
            var damaged = streams
            let onClient = round % 2 == 0
            let length = onClient ? damaged.client.count : damaged.server.count
            let at = Int.random(in: 0..<length, using: &random)
            let flip = UInt8.random(in: 1...255, using: &random)
            if onClient { damaged.client[at] ^= flip } else { damaged.server[at] ^= flip }
            var chunks = SplitMix64(seed: UInt64(round))
            let result = Self.decrypt(damaged, keys: Self.keys(name), using: &chunks, largest: 2000)
            #expect(truth.client.starts(with: result.client), "round \(round): byte \(at) of the \(onClient ? "client" : "server")")
            #expect(truth.server.starts(with: result.server), "round \(round): byte \(at) of the \(onClient ? "client" : "server")")
            if result.client != truth.client || result.server != truth.server {
                #expect(!result.failures.isEmpty, "round \(round): less plaintext, and no word why")
            }
        }
    }
}
