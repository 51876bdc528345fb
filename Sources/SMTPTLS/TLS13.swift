// TLS 1.3 (RFC 8446 section 7): HKDF-Expand-Label, traffic keys, KeyUpdate, record opening.
import Crypto
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

public enum TLS13 {
    /// HkdfLabel = uint16 length || opaque label<7..255> ("tls13 " + Label) || opaque context<0..255>
    public static func hkdfLabel(_ label: String, context: [UInt8], length: Int) -> [UInt8] {
        let full = Array("tls13 ".utf8) + Array(label.utf8)
        var info: [UInt8] = [UInt8(length >> 8), UInt8(length & 0xFF), UInt8(full.count)]
        info += full
        info.append(UInt8(context.count))
        info += context
        return info
    }

    /// HKDF-Expand-Label(Secret, Label, Context, Length) = HKDF-Expand(Secret, HkdfLabel, Length)
    public static func expandLabel(_ hash: SuiteHash, secret: [UInt8], label: String,
                                   context: [UInt8] = [], length: Int) -> [UInt8] {
        let info = hkdfLabel(label, context: context, length: length)
        let key: SymmetricKey
        switch hash {
        case .sha256: key = HKDF<SHA256>.expand(pseudoRandomKey: secret, info: info, outputByteCount: length)
        case .sha384: key = HKDF<SHA384>.expand(pseudoRandomKey: secret, info: info, outputByteCount: length)
        }
        return key.withUnsafeBytes { Array($0) }
    }

    /// [sender]_write_key = HKDF-Expand-Label(Secret, "key", "", key_length)
    /// [sender]_write_iv  = HKDF-Expand-Label(Secret, "iv", "", iv_length)   (iv_length = 12)
    public static func trafficKeys(_ suite: CipherSuite, secret: [UInt8]) -> (key: [UInt8], iv: [UInt8]) {
        (expandLabel(suite.hash, secret: secret, label: "key", length: suite.cipher.keyLength),
         expandLabel(suite.hash, secret: secret, label: "iv", length: 12))
    }

    /// application_traffic_secret_N+1 = HKDF-Expand-Label(application_traffic_secret_N, "traffic upd", "", Hash.length)
    public static func nextTrafficSecret(_ suite: CipherSuite, secret: [UInt8]) -> [UInt8] {
        expandLabel(suite.hash, secret: secret, label: "traffic upd", length: suite.hash.length)
    }
}

/// An AEAD key with its static IV and the record sequence number of one direction and epoch.
/// Used for TLS 1.3 (all suites) and TLS 1.2 ChaCha20-Poly1305 (RFC 7905), whose nonce is
/// iv XOR (64-bit sequence number, left-padded with zeros to 12 bytes).
public final class AEADProtection {
    public let cipher: BulkCipher
    let key: SymmetricKey
    let iv: [UInt8]
    public var sequence: UInt64 = 0
    var nonce: [UInt8]          // reused scratch: no per-record allocation for the nonce bytes
    var aad = [UInt8](repeating: 0, count: 13)   // the same, for TLS 1.2's additional data
    var header = [UInt8](repeating: 0, count: 5)  // and for TLS 1.3's (the record header)
    var scratch = Data()                          // the sealed box's bytes

    public init(cipher: BulkCipher, key: [UInt8], iv: [UInt8]) {
        precondition(cipher.isAEAD && iv.count == 12)
        self.cipher = cipher
        self.key = SymmetricKey(data: key)
        self.iv = iv
        self.nonce = iv
    }

    func makeNonce() {
        for i in 0..<4 { nonce[i] = iv[i] }
        var s = sequence
        for i in stride(from: 11, through: 4, by: -1) { nonce[i] = iv[i] ^ UInt8(truncatingIfNeeded: s); s >>= 8 }
    }

    /// Opens ciphertext‖tag(16) with the given nonce and AAD. Throws if the tag does not verify.
    /// The sealed box is built in its combined form (nonce‖ciphertext‖tag) in one copy.
    static func open(_ cipher: BulkCipher, key: SymmetricKey, nonce: [UInt8],
                     sealed: UnsafeRawBufferPointer, aad: some DataProtocol, scratch combined: inout Data,
                     room: UnsafeMutableRawPointer? = nil) throws -> Data {
        guard sealed.count >= 16 else { throw TLSParseError("record shorter than the AEAD tag") }
        if let room, room + nonce.count == UnsafeMutableRawPointer(mutating: sealed.baseAddress!) {
            // Room for the nonce right before the ciphertext: the box is the bytes where they lie.
            nonce.withUnsafeBytes { room.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            let box = Data(bytesNoCopy: room, count: nonce.count + sealed.count, deallocator: .none)
            return try open(cipher, key: key, combined: box, aad: aad)
        }
        // `combined` is reused from record to record: once the box is gone, it is ours alone again.
        combined.removeAll(keepingCapacity: true)
        combined.append(contentsOf: nonce)
        combined.append(sealed.bindMemory(to: UInt8.self))
        return try open(cipher, key: key, combined: combined, aad: aad)
    }

    static func open(_ cipher: BulkCipher, key: SymmetricKey, combined: Data, aad: some DataProtocol) throws -> Data {
        switch cipher {
        case .aes128GCM, .aes256GCM:
            return try AES.GCM.open(try AES.GCM.SealedBox(combined: combined), using: key, authenticating: aad)
        case .chaCha20Poly1305:
            return try ChaChaPoly.open(try ChaChaPoly.SealedBox(combined: combined), using: key, authenticating: aad)
        case .aes128CBC, .aes256CBC:
            preconditionFailure("not an AEAD")
        }
    }

    /// TLS 1.3 record: AAD is the 5-byte record header (opaque_type 23, 0x0303, length).
    /// Returns (real content type, content) after stripping TLSInnerPlaintext zero padding.
    public func openTLS13(_ record: TLSRecord) throws -> (type: UInt8, content: Data) {
        makeNonce()
        // The header as an array: swift-crypto reads contiguous arrays directly.
        for i in 0..<5 { header[i] = record.header[i] }
        let inner = try Self.open(cipher, key: key, nonce: nonce, sealed: record.fragment, aad: header, scratch: &scratch,
                                  room: record.scratchBeforeFragment.map { $0 + 12 - nonce.count })
        sequence += 1
        // TLSInnerPlaintext = content || ContentType type || uint8 zeros[length_of_padding]
        guard let last = inner.lastIndex(where: { $0 != 0 }) else {
            throw TLSParseError("TLSInnerPlaintext is all padding (unexpected_message)")
        }
        return (inner[last], inner[inner.startIndex..<last])
    }

    /// TLS 1.2 ChaCha20-Poly1305 (RFC 7905): same nonce construction as TLS 1.3, no explicit nonce;
    /// AAD = seq_num(8) || type || version || length of the plaintext.
    public func openTLS12ChaCha(_ record: TLSRecord) throws -> Data {
        makeNonce()
        TLS12.additionalData(&aad, sequence: sequence, record: record, plaintextLength: record.fragment.count - 16)
        let plain = try Self.open(cipher, key: key, nonce: nonce, sealed: record.fragment, aad: aad, scratch: &scratch,
                                  room: record.scratchBeforeFragment)
        sequence += 1
        return plain
    }
}
