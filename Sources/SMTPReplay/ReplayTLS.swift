import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import SwiftASN1
import X509

/// The certificate a replay server presents: from files, or made at start.
public struct ReplayCertificate: Sendable {
    /// The CA that signed the served certificate (PEM), when it was made here: what the client
    /// under test should trust (`--tls-ca-out`).
    public let caPEM: String?
    let chain: [NIOSSLCertificate]
    let key: NIOSSLPrivateKey

    /// Reads a certificate chain and its key (PEM).
    public init(certificateFile: String, keyFile: String) throws {
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificateFile)
        } catch {
            throw ReplayError.tls("\(certificateFile): not a PEM certificate (\(error))")
        }
        guard !chain.isEmpty else { throw ReplayError.tls("\(certificateFile): no certificate in it") }
        do {
            key = try NIOSSLPrivateKey(file: keyFile, format: .pem)
        } catch {
            throw ReplayError.tls("\(keyFile): not a PEM private key (\(error))")
        }
        caPEM = nil
    }

    /// Makes a CA and a leaf (P-256, valid for a day) for `localhost`, `127.0.0.1`, `::1` and
    /// `hosts` (names or IP addresses, e.g. the `--listen` host).
    public static func generate(hosts: [String] = []) throws -> ReplayCertificate {
        let now = Date()
        let notBefore = now.addingTimeInterval(-3600)
        let notAfter = now.addingTimeInterval(24 * 3600)

        let caKey = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let caName = try DistinguishedName {
            OrganizationName("smtptape replay")
            CommonName("smtptape replay test CA")
        }
        let caIdentifier = SubjectKeyIdentifier(hash: caKey.publicKey)
        let ca = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: caKey.publicKey,
            notValidBefore: notBefore, notValidAfter: notAfter, issuer: caName, subject: caName,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                caIdentifier
            },
            issuerPrivateKey: caKey)

        let leafSigningKey = P256.Signing.PrivateKey()
        let leafKey = Certificate.PrivateKey(leafSigningKey)
        var names: [GeneralName] = [.dnsName("localhost"),
                                    .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])),
                                    .ipAddress(ASN1OctetString(contentBytes: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]))]
        for host in hosts where !["localhost", "127.0.0.1", "::1", ""].contains(host) {
            if let address = try? SocketAddress(ipAddress: host, port: 0) {
                switch address {
                case .v4(let v4): names.append(.ipAddress(ASN1OctetString(contentBytes: withUnsafeBytes(of: v4.address.sin_addr) { Array($0) }[...])))
                case .v6(let v6): names.append(.ipAddress(ASN1OctetString(contentBytes: withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }[...])))
                case .unixDomainSocket: break
                }
            } else {
                names.append(.dnsName(host))
            }
        }
        let leaf = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: leafKey.publicKey,
            notValidBefore: notBefore, notValidAfter: notAfter, issuer: ca.subject,
            subject: try DistinguishedName { CommonName("localhost") },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth])
                SubjectAlternativeNames(names)
                SubjectKeyIdentifier(hash: leafKey.publicKey)
                AuthorityKeyIdentifier(keyIdentifier: caIdentifier.keyIdentifier)
            },
            issuerPrivateKey: caKey)

        let caPEM = try ca.serializeAsPEM().pemString
        let leafPEM = try leaf.serializeAsPEM().pemString
        return ReplayCertificate(
            caPEM: caPEM,
            chain: [try NIOSSLCertificate(bytes: Array(leafPEM.utf8), format: .pem)],
            key: try NIOSSLPrivateKey(bytes: Array(leafSigningKey.pemRepresentation.utf8), format: .pem))
    }

    init(caPEM: String?, chain: [NIOSSLCertificate], key: NIOSSLPrivateKey) {
        self.caPEM = caPEM
        self.chain = chain
        self.key = key
    }

    /// The server-side TLS context (STARTTLS and implicit TLS share it).
    /// The server-side TLS context, writing its secrets to `keyLog`.
    public func serverContext(keyLog: KeyLogFile?) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        configuration.keyLogCallback = keyLog?.callback
        // A close after TLS waits this long for the client's close_notify (the default is 5 s).
        configuration.shutdownTimeout = .milliseconds(500)
        return try NIOSSLContext(configuration: configuration)
    }
}

/// Appends TLS secrets in the NSS key log format (what `SSLKEYLOGFILE` writes), so that a
/// capture of the client's traffic can be decrypted (Wireshark, `smtptape --keylog`).
public final class KeyLogFile: Sendable {
    let handle: NIOLockedValueBox<FileHandle>

    /// Creates (or empties) the file, readable by its owner only.
    public init(path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]),
              let handle = FileHandle(forWritingAtPath: path) else {
            throw ReplayError.file("\(path): cannot be written")
        }
        self.handle = NIOLockedValueBox(handle)
    }

    /// NIOSSL calls this from each connection's event loop: writes are serialised.
    public var callback: NIOSSLKeyLogCallback {
        { [handle] line in
            handle.withLockedValue { $0.write(Data(line.readableBytesView)) }
        }
    }

    public func close() {
        handle.withLockedValue { try? $0.close() }
    }
}

/// What stops a replay server from starting.
public enum ReplayError: Error, CustomStringConvertible, Sendable {
    /// A certificate or key that cannot be used.
    case tls(String)
    /// A file that cannot be written.
    case file(String)
    /// An address that cannot be bound or parsed.
    case listen(String)
    /// Scenarios that cannot be served together.
    case scenarios(String)

    public var description: String {
        switch self {
        case .tls(let text), .file(let text), .listen(let text), .scenarios(let text): text
        }
    }
}
