#!/usr/bin/env python3
"""Small aiosmtpd-based SMTP server used by Captures/make-captures.sh.

It exists only to produce sample captures on loopback.  Features, all
switchable from the command line:

  * plain SMTP (always);
  * AUTH PLAIN and AUTH LOGIN (--auth): user "alice" with password
    "wonderland" is accepted, every other credential gets aiosmtpd's
    "535 5.7.8 Authentication credentials invalid";
  * STARTTLS (--starttls) or implicit TLS / SMTPS (--smtps), using a
    throw-away self-signed certificate generated at start-up into a
    temporary directory that is deleted as soon as the key is loaded
    (nothing is ever written into the repository), or the certificate and
    key given with --tls-cert/--tls-key (the capture script makes a
    throw-away RSA one with openssl req for the ECDHE-RSA TLS 1.2 suites);
  * --ciphers: the TLS <= 1.2 cipher list (ssl.SSLContext.set_ciphers;
    Python's default leaves out the SHA-1 CBC suites).  TLS 1.3 suites
    cannot be set from Python; restrict them on the client side;
  * --keylog FILE: the server writes the NSS key log (SSLKEYLOGFILE
    format) of every TLS session it accepts after READY
    (ssl.SSLContext.keylog_filename);
  * a rejected recipient: RCPT TO any address whose local part is
    "nobody" (i.e. the address starts with "nobody@") gets
    "550 5.1.1 <ADDRESS>: Recipient address rejected".

Messages are not stored anywhere; one summary line per accepted message is
written to stderr.  When the listening socket is up the script prints
"READY <host> <port>" on stdout (and, with --ready-file, writes the same line
to that file), then runs until SIGINT/SIGTERM.
"""

import argparse
import datetime
import ipaddress
import os
import signal
import ssl
import sys
import tempfile
import threading
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

# aiosmtpd 1.4 warns about its own internal use of Session.login_data.
warnings.filterwarnings("ignore", message="Session.login_data is deprecated")

VALID_USER = b"alice"
VALID_PASSWORD = b"wonderland"


def log(msg):
    print(f"aiosmtpd_server: {msg}", file=sys.stderr, flush=True)


class Handler:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower().startswith("nobody@"):
            return f"550 5.1.1 <{address}>: Recipient address rejected"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        size = len(envelope.original_content or envelope.content or b"")
        log(f"accepted message from=<{envelope.mail_from}> "
            f"to={','.join('<%s>' % r for r in envelope.rcpt_tos)} size={size}")
        return "250 2.0.0 Ok: queued"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword)
          and auth_data.login == VALID_USER
          and auth_data.password == VALID_PASSWORD)
    who = auth_data.login if isinstance(auth_data, LoginPassword) else auth_data
    log(f"AUTH {mechanism} for {who!r}: {'ok' if ok else 'rejected'}")
    # handled=False lets aiosmtpd send its standard 235 / 535 replies.
    return AuthResult(success=ok, handled=False)


def make_tls_context(hostname, cert_file=None, key_file=None):
    """Self-signed certificate, generated now, loaded, and then deleted;
    or, with cert_file/key_file, that certificate and key."""
    if cert_file:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_file, key_file)
        return ctx
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([
                x509.DNSName(hostname),
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                x509.IPAddress(ipaddress.ip_address("::1")),
            ]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory(prefix="aiosmtpd-cert-") as tmp:
        cert_path = os.path.join(tmp, "cert.pem")
        key_path = os.path.join(tmp, "key.pem")
        with open(cert_path, "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_path, "wb") as f:
            os.fchmod(f.fileno(), 0o600)
            f.write(key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ))
        ctx.load_cert_chain(cert_path, key_path)
    return ctx


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (127.0.0.1 or ::1)")
    p.add_argument("--port", type=int, default=2525)
    p.add_argument("--hostname", default="aiosmtpd.example.test",
                   help="name used in the greeting and EHLO reply")
    p.add_argument("--auth", action="store_true",
                   help="enable AUTH PLAIN/LOGIN (alice / wonderland)")
    p.add_argument("--allow-plaintext-auth", action="store_true",
                   help="offer AUTH without TLS (auth_require_tls=False)")
    tls = p.add_mutually_exclusive_group()
    tls.add_argument("--starttls", action="store_true",
                     help="offer STARTTLS with a throw-away certificate")
    tls.add_argument("--smtps", action="store_true",
                     help="implicit TLS from the first byte (SMTPS, port 465)")
    p.add_argument("--tls-cert", help="PEM certificate to use instead of a generated one")
    p.add_argument("--tls-key", help="PEM private key for --tls-cert")
    p.add_argument("--ciphers", help="TLS <= 1.2 cipher string (SSLContext.set_ciphers)")
    p.add_argument("--keylog", help="write the NSS key log of accepted TLS sessions here")
    p.add_argument("--ready-file", help="also write the READY line here")
    args = p.parse_args()

    if args.allow_plaintext_auth and not args.auth:
        p.error("--allow-plaintext-auth needs --auth")
    if bool(args.tls_cert) != bool(args.tls_key):
        p.error("--tls-cert and --tls-key go together")
    if (args.tls_cert or args.ciphers or args.keylog) and not (args.starttls or args.smtps):
        p.error("--tls-cert, --ciphers and --keylog need --starttls or --smtps")

    smtp_kwargs = dict(
        server_hostname=args.hostname,
        # AUTH is only advertised when TLS is active unless this is False;
        # without --auth we keep the default so no AUTH is advertised at all
        # on a plain connection.
        # With --smtps the whole connection is TLS, but aiosmtpd only
        # notices TLS started by STARTTLS, so it must be told explicitly.
        auth_require_tls=not (args.allow_plaintext_auth or (args.smtps and args.auth)),
    )
    if args.auth:
        smtp_kwargs["authenticator"] = authenticator
    ssl_context = ctx = None
    if args.starttls or args.smtps:
        ctx = make_tls_context(args.hostname, args.tls_cert, args.tls_key)
        if args.ciphers:
            ctx.set_ciphers(args.ciphers)
        if args.starttls:
            smtp_kwargs["tls_context"] = ctx
        else:
            ssl_context = ctx

    controller = Controller(Handler(), hostname=args.host, port=args.port,
                            ssl_context=ssl_context, **smtp_kwargs)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    # start() returns only once the socket is listening (it makes one trigger
    # connection to itself, so start any packet capture *after* READY).
    controller.start()
    if args.keylog:
        # Only now: with --smtps, start() has just made its own TLS trigger
        # connection, whose keys must not end up in the key log.  New
        # connections pick the callback up from the context.
        ctx.keylog_filename = args.keylog
    ready = f"READY {args.host} {args.port}"
    if args.ready_file:
        with open(args.ready_file, "w") as f:
            f.write(ready + "\n")
    print(ready, flush=True)
    log(f"listening on {args.host} port {args.port} "
        f"(auth={'yes' if args.auth else 'no'}"
        f"{', plaintext-auth' if args.allow_plaintext_auth else ''}, "
        f"tls={'starttls' if args.starttls else 'smtps' if args.smtps else 'no'})")
    try:
        while not stop.wait(0.2):
            pass
    finally:
        controller.stop()
        log("stopped")


if __name__ == "__main__":
    main()
