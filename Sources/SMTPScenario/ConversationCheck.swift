import SMTPCore
import Yams

/// The checks that make `check` understand SMTP, not only YAML: whatever it accepts, replay can
/// play and a transcript renders as a sensible dialogue. Each problem points at the key or value
/// it concerns.
extension Walker {
    mutating func checkConversation(_ session: Scenario.Session, steps: [ParsedStep], greeting greetingNode: Node?, end endNode: Node?) {
        if let code = session.greeting.code, ![220, 421, 554].contains(code) {
            report(greetingNode, "a greeting is 220 (or 421 or 554 to refuse the session, RFC 5321 3.1), not \(code)")
        }
        if let node = greetingNode, session.greeting.bytes.last != 0x0A {
            report(node, "the greeting must end with a line ending")
        }
        var tlsBegun = session.implicitTLS
        /// The step before was DATA answered 354: the message comes next.
        var messageDue = false
        /// The step before got a 334 challenge: an AUTH response comes next.
        var responseDue = false
        /// The step before got a 421: the server has closed.
        var closed = false
        for parsed in steps {
            let step = parsed.step
            let kindNode = parsed.kindKey.flatMap { parsed.pairs.keys[$0] } ?? parsed.node
            if closed {
                report(parsed.node, "the server closes the connection after a 421 reply (RFC 5321 3.8): no step can follow it")
                closed = false
            }
            switch step.kind {
            case .message(let message) where message.via == .data:
                if !messageDue {
                    report(kindNode, "a message sent with DATA needs the step just before it to be DATA answered 354")
                }
            case .message:
                if messageDue {
                    report(parsed.pairs.keys["via"] ?? kindNode, "after DATA's 354 the message is sent with DATA, not BDAT")
                }
            case .command, .auth, .unsolicited:
                if messageDue {
                    report(parsed.node, "after DATA's 354 the client sends the message: this step must be a 'message'")
                }
            }
            let answersChallenge: Bool
            switch step.kind {
            case .auth:
                if !responseDue { report(kindNode, "an 'auth' step answers a 334 challenge, and the step before it got none") }
                answersChallenge = true
            case .command:
                if responseDue {
                    report(kindNode, "after a 334 challenge the client sends an AUTH response: this step must be 'auth' (a lone '*' cancels)")
                }
                answersChallenge = step.verb == .auth
            case .unsolicited:
                // (A 334 the server sends unprompted, in a capture that missed the AUTH line, counts too.)
                answersChallenge = true
            case .message:
                answersChallenge = false
            }
            checkLines(parsed)
            checkTLS(parsed, tlsBegun: &tlsBegun)
            checkChunks(parsed)
            let code = step.fault == nil ? step.reply?.code : nil
            messageDue = step.verb == .data && code == 354
            responseDue = code == 334 && answersChallenge
            closed = code == 421
        }
        checkEnd(session, last: steps.last, node: endNode)
    }

    /// A line the client sends is one line with its ending; a reply is whole lines; what was
    /// recorded meets its own pattern.
    mutating func checkLines(_ parsed: ParsedStep) {
        let step = parsed.step
        if let key = parsed.kindKey, key == "client-base64" || key == "auth-base64", let line = step.clientLine {
            let newlines = line.bytes.filter { $0 == 0x0A }.count
            if line.bytes.last != 0x0A || newlines != 1 {
                report(parsed.pairs[key], "'\(key)' must be exactly one line, ending in LF (CRLF or a bare LF)")
            }
        }
        if let node = parsed.pairs["reply-base64"], let reply = step.reply, reply.bytes.last != 0x0A {
            report(node, "'reply-base64' must end with a line ending (for a reply cut short, use 'fault: partial')")
        }
        guard let patternNode = parsed.pairs["pattern"], let matcher = parsed.matcher else { return }
        switch step.kind {
        case .command(let line), .auth(let line):
            if line.match == .wildcard || line.match == .regex, !matcher.accepts(line: line.bytes) {
                report(patternNode, "the recorded line '\(ByteString.escaped(line.content))' does not match its own pattern")
            }
        case .message(let message):
            if message.match == .wildcard || message.match == .regex, !matcher.accepts(message: message.content) {
                report(patternNode, "the recorded message does not match its own pattern")
            }
        case .unsolicited:
            break
        }
    }

    /// `tls: start` goes on a STARTTLS accepted with 2xx (RFC 3207 specifies 220), once; and such
    /// a STARTTLS always starts TLS.
    mutating func checkTLS(_ parsed: ParsedStep, tlsBegun: inout Bool) {
        let step = parsed.step
        let accepted = step.fault == nil && (step.reply?.code).map { $0 / 100 == 2 } == true
        if step.startsTLS {
            let node = parsed.pairs.keys["tls"]
            if step.verb != .starttls {
                report(node, "'tls: start' goes on a STARTTLS step")
            } else if !accepted {
                report(node, "'tls: start' needs a 2xx reply to STARTTLS (RFC 3207: 220)")
            }
            if tlsBegun { report(node, "TLS has already begun in this session") }
            tlsBegun = true
        } else if step.verb == .starttls, accepted {
            report(parsed.pairs["reply"] ?? parsed.pairs["reply-base64"] ?? parsed.node,
                   "STARTTLS answered 2xx starts TLS: add 'tls: start' to this step (or answer 454 or 5xx)")
        }
    }

    /// Recorded BDAT chunk sizes add up to the message, with a reply for each chunk but the last.
    mutating func checkChunks(_ parsed: ParsedStep) {
        guard case .message(let message) = parsed.step.kind, message.via == .bdat, !message.chunks.isEmpty else { return }
        let total = message.chunks.reduce(0) { $0 &+ $1 }
        if total != message.content.count {
            report(parsed.pairs["chunks"], "the chunk sizes add up to \(total) bytes, but the message has \(message.content.count)")
        }
        if message.chunkReplies.count > message.chunks.count - 1 {
            report(parsed.pairs["chunk-replies"], "\(message.chunkReplies.count) chunk replies for \(message.chunks.count) chunks: every chunk but the last gets one")
        }
    }

    /// `end` agrees with the last step.
    mutating func checkEnd(_ session: Scenario.Session, last: ParsedStep?, node: Node?) {
        guard let node else { return }  // left out, it is inferred from the last step
        let quitAnswered = last.map { $0.step.verb == .quit && $0.step.reply != nil && $0.step.fault == nil } ?? false
        if quitAnswered, session.end != .quit {
            report(node, "the session ends with QUIT and its reply: 'end' must be quit (or left out)")
        } else if last?.step.fault == .stall, session.end == .quit {
            report(node, "after 'fault: stall' the server never answers: 'end' must be server-close (its idle timeout), client-close, or left out")
        } else if let fault = last?.step.fault, fault != .stall, session.end != .serverClose {
            report(node, "after a fault the server has closed the connection: 'end' must be server-close (or left out)")
        } else if session.end == .quit, !quitAnswered {
            report(node, "'end: quit' needs a QUIT step with its reply last")
        }
    }
}
