#if canImport(SMTPReplay)
import ArgumentParser
import SMTPFiles
import SMTPReplay

/// The flags of the commands that listen (`replay`, `record`): where, and the TLS they present to
/// clients. One meaning everywhere (CONVENTIONS.md).
struct ListenOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Where to listen: HOST:PORT, [::1]:PORT for IPv6; port 0 picks a free one.", valueName: "host:port"))
    var listen = "127.0.0.1:2525"

    @Flag(help: "Implicit TLS (SMTPS) towards clients.")
    var listenTLS = false

    @Option(help: ArgumentHelp("The certificate shown to clients (PEM); without it one is made at start.", valueName: "file"))
    var tlsCert: String?

    @Option(help: ArgumentHelp("The certificate's private key (PEM).", valueName: "file"))
    var tlsKey: String?

    @Option(help: ArgumentHelp("Write the CA that signed the certificate made at start (PEM), for clients to trust.", valueName: "file"))
    var tlsCAOut: String?

    @Option(help: ArgumentHelp("Write the TLS secrets in the NSS key log format.", valueName: "file"))
    var keylogOut: String?

    func validate() throws {
        if (tlsCert == nil) != (tlsKey == nil) { throw ValidationError("--tls-cert and --tls-key go together.") }
        if tlsCert != nil, tlsCAOut != nil { throw ValidationError("--tls-ca-out writes the CA of a certificate made at start; with --tls-cert you have your own.") }
        _ = try address()
    }

    /// `--listen` as host and port.
    func address() throws -> (host: String, port: Int) { try Self.address(listen, flag: "--listen") }

    /// `HOST:PORT` or `[V6]:PORT` (a bare `:PORT` listens on loopback).
    static func address(_ text: String, flag: String) throws -> (host: String, port: Int) {
        var host = "127.0.0.1"
        var portText = text
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = String(text[text.index(after: text.startIndex)..<close])
            portText = String(text[close...].dropFirst().drop { $0 == ":" })
        } else if let colon = text.lastIndex(of: ":") {
            host = String(text[..<colon])
            portText = String(text[text.index(after: colon)...])
            if host.isEmpty { host = "127.0.0.1" }
        }
        guard let port = Int(portText), (0...65535).contains(port) else {
            throw ValidationError("\(flag) takes HOST:PORT (or [::1]:PORT), with a port from 0 to 65535: '\(text)'")
        }
        return (host, port)
    }

    /// The certificate from `--tls-cert/--tls-key`, if given.
    func certificate() throws -> ReplayCertificate? {
        guard let tlsCert, let tlsKey else { return nil }
        return try ReplayCertificate(certificateFile: tlsCert, keyFile: tlsKey)
    }

    /// Writes the CA made at start to `--tls-ca-out`, if asked; `missing` says why there is none.
    func writeCA(_ pem: String?, missing: String) throws {
        guard let tlsCAOut else { return }
        guard let pem else { throw ReplayError.tls("--tls-ca-out: \(missing)") }
        do {
            try ReplacedFile.write(Array(pem.utf8), to: tlsCAOut)
        } catch {
            throw ReplayError.file(error.description)
        }
    }
}
#endif
