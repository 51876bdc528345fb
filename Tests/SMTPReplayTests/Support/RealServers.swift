import Foundation
import Testing

/// Real SMTP servers the record tests relay to: aiosmtpd (STARTTLS, AUTH) and small Python
/// servers that misbehave on purpose.
final class PythonServer: @unchecked Sendable {
    let process = Process()
    let input = Pipe()
    let port: Int

    /// Starts `script` (which must print `ready` once listening) with `arguments`.
    init(_ script: String, arguments: [String] = []) throws {
        port = try Self.freePort()
        let file = try Tools.temporaryFile("server.py", contents: script)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", file, String(port)] + arguments
        process.standardInput = input
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        let ready = out.fileHandleForReading.readData(ofLength: 6)
        try #require(String(decoding: ready, as: UTF8.self) == "ready\n", "the Python server did not start")
    }

    deinit { stop() }

    func stop() {
        if process.isRunning {
            try? input.fileHandleForWriting.close()
            // SIGKILL: a child started from a test thread may have SIGTERM blocked.
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// A port nobody listens on now (bound, read, released).
    static func freePort() throws -> Int {
        let result = try Tools.run(["python3", "-c", "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"])
        return try #require(Int(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))
    }

    /// A self-signed certificate for 127.0.0.1 and localhost: (certificate, key) paths.
    static func certificate() throws -> (cert: String, key: String) {
        let folder = URL(fileURLWithPath: try Tools.temporaryFile("placeholder", contents: "")).deletingLastPathComponent().path
        let cert = folder + "/server.pem", key = folder + "/server.key"
        let made = try Tools.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                                  "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost",
                                  "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        try #require(made.status == 0, "openssl: \(made.stderr)")
        return (cert, key)
    }

    /// aiosmtpd with STARTTLS (required before AUTH) and AUTH PLAIN/LOGIN for alice / s3cret;
    /// with a fourth argument `implicit`, TLS from the first byte (SMTPS) instead.
    static let aiosmtpd = """
        import ssl, sys
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword
        port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
        def authenticator(server, session, envelope, mechanism, data):
            ok = isinstance(data, LoginPassword) and data.login == b"alice" and data.password == b"s3cret"
            return AuthResult(success=ok)
        class Handler:
            async def handle_DATA(self, server, session, envelope):
                return "250 2.0.0 Ok: queued as 7F3A"
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        if sys.argv[4:] == ["implicit"]:
            controller = Controller(Handler(), hostname="127.0.0.1", port=port, server_hostname="mx.example.test",
                                    ssl_context=context, authenticator=authenticator, auth_require_tls=False)
        else:
            controller = Controller(Handler(), hostname="127.0.0.1", port=port, server_hostname="mx.example.test",
                                    tls_context=context, require_starttls=True, authenticator=authenticator, auth_require_tls=True)
        controller.start()
        print("ready", flush=True)
        sys.stdin.read()
        controller.stop()
        """

    /// aiosmtpd without TLS or AUTH, accepting every message.
    static let plainAiosmtpd = """
        import sys
        from aiosmtpd.controller import Controller
        class Handler:
            async def handle_DATA(self, server, session, envelope):
                return "250 2.0.0 Ok: queued"
        controller = Controller(Handler(), hostname="127.0.0.1", port=int(sys.argv[1]), server_hostname="mx.example.test")
        controller.start()
        print("ready", flush=True)
        sys.stdin.read()
        controller.stop()
        """

    /// A server that answers until DATA's content starts, then resets the connection.
    static let resetInData = """
        import socket, struct, sys
        port = int(sys.argv[1])
        listener = socket.socket(); listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port)); listener.listen(5)
        print("ready", flush=True)
        while True:
            s, _ = listener.accept(); f = s.makefile("rb")
            s.sendall(b"220 mx.example.test ESMTP\\r\\n")
            while True:
                line = f.readline()
                if not line: break
                if line.upper().startswith(b"DATA"):
                    s.sendall(b"354 go ahead\\r\\n")
                    f.readline()
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    f.close(); s.close()  # the socket closes only once its file object has
                    break
                s.sendall(b"221 bye\\r\\n" if line.upper().startswith(b"QUIT") else b"250 ok\\r\\n")
        """
}
