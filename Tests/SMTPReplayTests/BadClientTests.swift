import Foundation
import Testing

/// Clients that misbehave, against one `smtptape replay` process: after each, a well-behaved
/// client still gets the scripted replies, and the server's memory stays bounded.
@Suite(.enabled(if: Tools.available("python3"), "python3 is not installed"))
struct BadClientTests {
    static let scenario = """
        version: 1
        name: submission with STARTTLS
        sessions:
        - greeting: 220 mx.example.com ESMTP
          steps:
          - client: EHLO *
            match: wildcard
            reply: |-
              250-mx.example.com
              250-PIPELINING
              250 STARTTLS
          - client: STARTTLS
            reply: 220 2.0.0 Ready to start TLS
            tls: start
          - client: EHLO *
            match: wildcard
            reply: |-
              250-mx.example.com
              250 PIPELINING
          - client: MAIL FROM:<alice@example.com>
            reply: 250 2.1.0 Ok
          - client: RCPT TO:<bob@example.net>
            reply: 250 2.1.5 Ok
          - client: DATA
            reply: 354 go ahead
          - message: |
              Subject: hi

              hello
            reply: 250 2.0.0 queued
          - client: QUIT
            reply: 221 2.0.0 Bye
        """

    /// Python clients, by name; each prints what the test checks.
    static let clients = """
        import socket, ssl, sys, time
        port, ca, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]

        def connect():
            s = socket.create_connection(("127.0.0.1", port), timeout=15)
            return s, s.makefile("rb")

        def reply(f):
            lines = []
            while True:
                line = f.readline()
                if not line: return lines or [b"(closed)"]
                lines.append(line.rstrip(b"\\r\\n"))
                if line[3:4] != b"-": return lines

        def good():
            import smtplib
            context = ssl.create_default_context(cafile=ca)
            with smtplib.SMTP("127.0.0.1", port, timeout=15) as c:
                c.starttls(context=context)
                c.sendmail("alice@example.com", ["bob@example.net"], "Subject: hi\\r\\n\\r\\nhello\\r\\n")
            print("good: delivered")

        if mode == "good":
            good()
        elif mode == "garbage":
            s, f = connect(); reply(f)
            s.sendall(bytes(range(256)) * 4 + b"\\r\\n\\x00\\xff junk\\r\\n")
            print("garbage:", reply(f)[0].decode("latin-1")[:3])
            s.close()
        elif mode == "longline":
            s, f = connect(); reply(f)
            chunk = b"x" * 65536
            for _ in range(160): s.sendall(chunk)   # 10 MiB, no line ending
            print("longline:", reply(f)[0].decode()[:3])
            s.sendall(b"\\r\\nNOOP\\r\\n")
            print("after:", reply(f)[0].decode()[:3])
            s.close()
        elif mode == "silent":
            s, f = connect(); reply(f)
            start = time.time()
            print("silent:", reply(f)[0].decode()[:9], round(time.time() - start))
        elif mode == "dropdata":
            s, f = connect(); reply(f)
            for line in [b"EHLO me", b"STARTTLS"]:
                s.sendall(line + b"\\r\\n"); reply(f)
            t = ssl.create_default_context(cafile=ca).wrap_socket(s, server_hostname="localhost")
            tf = t.makefile("rb")
            for line in [b"EHLO me", b"MAIL FROM:<alice@example.com>", b"RCPT TO:<bob@example.net>", b"DATA"]:
                t.sendall(line + b"\\r\\n"); reply(tf)
            t.sendall(b"Subject: hi\\r\\n\\r\\nhalf a mess")
            t.close()
            print("dropdata: closed")
        elif mode == "badtls":
            s, f = connect(); reply(f)
            s.sendall(b"EHLO me\\r\\n"); reply(f)
            s.sendall(b"STARTTLS\\r\\n"); print("badtls:", reply(f)[0].decode()[:3])
            s.sendall(b"\\x16\\x03\\x01\\x00\\x05hello this is no handshake\\r\\n")
            s.settimeout(5)
            # A TLS alert may come first; then the server closes.
            while s.recv(4096): pass
            print("badtls: closed")
        elif mode == "inject":
            s, f = connect(); reply(f)
            s.sendall(b"EHLO me\\r\\n"); reply(f)
            s.sendall(b"STARTTLS\\r\\nRSET\\r\\n")
            print("inject:", reply(f)[0].decode()[:3])
            t = ssl.create_default_context(cafile=ca).wrap_socket(s, server_hostname="localhost")
            tf = t.makefile("rb")
            t.sendall(b"EHLO me\\r\\n")
            # The RSET was dropped: the first reply inside TLS answers EHLO.
            print("inside:", reply(tf)[-1].decode())
            t.sendall(b"QUIT\\r\\n"); reply(tf)
        elif mode == "hold":
            held = []
            for _ in range(500):
                s, f = connect(); held.append((s, f))
            greeted = sum(1 for s, f in held if reply(f)[0].startswith(b"220"))
            print("held:", greeted, flush=True)
            good()
            time.sleep(0.5)
            for s, f in held: s.close()
        """

    /// One server for the whole suite of misbehaviours, in order, each followed by a good client.
    @Test("garbage, a 10 MiB line, silence, a disconnect in DATA, a failed TLS handshake, STARTTLS injection and 500 open connections: the server stays up, answers correctly, and stays small")
    func misbehaviours() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("replay-bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let scenario = dir.appendingPathComponent("s.yaml").path, ca = dir.appendingPathComponent("ca.pem").path
        let script = dir.appendingPathComponent("clients.py").path
        try Data(Self.scenario.utf8).write(to: URL(fileURLWithPath: scenario))
        try Data(Self.clients.utf8).write(to: URL(fileURLWithPath: script))
        let report = dir.appendingPathComponent("report.jsonl").path
        let server = try ReplayProcess([scenario, "--listen", "127.0.0.1:0", "--tls-ca-out", ca, "--idle-timeout", "2", "--report", report])
        func run(_ mode: String) throws -> String {
            try Tools.run(["python3", script, String(server.port), ca, mode], timeout: 60).stdout
        }
        #expect(try run("good") == "good: delivered\n")
        let baseline = try #require(server.residentKiB)

        #expect(try run("garbage") == "garbage: 503\n")
        #expect(try run("good") == "good: delivered\n")

        #expect(try run("longline") == "longline: 500\nafter: 503\n")
        #expect(try run("good") == "good: delivered\n")
        let afterLongLine = try #require(server.residentKiB)
        #expect(afterLongLine - baseline < 8 << 10, "10 MiB without a line ending grew the server by \(afterLongLine - baseline) KiB")

        #expect(try run("silent") == "silent: 421 4.4.2 2\n")
        #expect(try run("dropdata") == "dropdata: closed\n")
        #expect(try run("good") == "good: delivered\n")

        let badTLS = try run("badtls")
        #expect(badTLS == "badtls: 220\nbadtls: closed\n", "\(badTLS)")
        #expect(try run("good") == "good: delivered\n")

        #expect(try run("inject") == "inject: 220\ninside: 250 PIPELINING\n")

        // 500 connections open at once, and a good client among them.
        var peak = 0
        let holding = Process()
        holding.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        holding.arguments = ["python3", script, String(server.port), ca, "hold"]
        let out = Pipe()
        holding.standardOutput = out
        try holding.run()
        while holding.isRunning {
            peak = max(peak, server.residentKiB ?? 0)
            usleep(50_000)
        }
        let held = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(held == "held: 500\ngood: delivered\n", "\(held)")
        #expect(peak - baseline < 64 << 10, "500 open connections took \(peak - baseline) KiB")

        server.signal(SIGTERM)
        let end = server.finish()
        let verdicts = try String(contentsOfFile: report, encoding: .utf8).split(separator: "\n").dropLast()
        // The good clients passed; each misbehaviour failed its session with a note saying why.
        #expect(verdicts.filter { $0.contains("\"passed\":true") }.count == 6, "\(end.stderr.suffix(3000))")
        let notes = verdicts.joined(separator: "\n")
        #expect(notes.contains("over the 4096-octet limit"))
        #expect(notes.contains("the client sent nothing for 2 s"))
        #expect(notes.contains("the client sent 6 bytes after STARTTLS before TLS began: they were dropped, not executed"))
        #expect(notes.contains("the connection failed"))
    }
}
