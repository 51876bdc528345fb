#!/usr/bin/env python3
"""Python smtplib client used by Captures/make-captures.sh.

Each scenario talks to an already running server with
smtplib.SMTP.set_debuglevel(1) switched on *before* connecting, so the whole
dialogue (greeting included) is printed to stderr by smtplib itself; the
capture script saves that stderr as NAME.client.log.  Nothing else is
printed on success.

Scenarios:
  auth-plain  EHLO, AUTH PLAIN alice/wonderland (via SMTP.login), one message
  auth-login  EHLO, AUTH LOGIN with a wrong password (535, classic three-step
              exchange), then AUTH LOGIN alice/wonderland (username sent as
              the initial response, smtplib's default), one message
  multi       EHLO, NOOP, HELP, VRFY, message 1, RSET, message 2 (UTF-8,
              BODY=8BITMIME, dot-stuffed lines), NOOP, MAIL + RSET (aborted
              transaction), message 3 to two recipients, QUIT
  send        EHLO, one message (--message NAME), QUIT
  auth-send   EHLO, AUTH PLAIN alice/wonderland, one message (--message), QUIT

TLS (for the TLS sample captures): --tls starttls sends EHLO and STARTTLS
first and then runs the scenario inside TLS (smtplib sends EHLO again);
--tls smtps speaks TLS from the first byte (smtplib.SMTP_SSL).  The
certificate is not verified.  --keylog FILE makes the client write the NSS
key log (ssl.SSLContext.keylog_filename); --ciphers sets the TLS <= 1.2
cipher list and --tls-max 1.2 caps the version.  TLS 1.3 suites cannot be
chosen from Python: set them with an OpenSSL config file (OPENSSL_CONF).

Message files are read from --messages (LF line endings on disk) and sent
with CRLF line endings; smtplib does the dot-stuffing.
"""

import argparse
import os
import smtplib
import ssl
import sys

CLIENT_NAME = "client.example.test"
FROM = "alice@example.com"
BOB = "bob@example.net"
CAROL = "carol@example.org"


def load(msgdir, name):
    with open(os.path.join(msgdir, name + ".eml"), "rb") as f:
        data = f.read()
    # smtplib only fixes line endings for str messages; ours are bytes
    # (they may contain UTF-8), so convert LF -> CRLF here.
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def tls_context(a):
    # Not ssl.create_default_context(): that would also pick up
    # SSLKEYLOGFILE from the environment.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if a.ciphers:
        ctx.set_ciphers(a.ciphers)
    if a.tls_max == "1.2":
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if a.keylog:
        ctx.keylog_filename = a.keylog
    return ctx


def connect(host, port, a=None):
    tls = a.tls if a is not None else None
    if tls == "smtps":
        smtp = smtplib.SMTP_SSL(local_hostname=CLIENT_NAME, timeout=30, context=tls_context(a))
    else:
        smtp = smtplib.SMTP(local_hostname=CLIENT_NAME, timeout=30)
    smtp.set_debuglevel(1)
    # smtplib takes the TLS server name from the host given to the
    # constructor, which would also connect before debugging is on.
    smtp._host = host
    smtp.connect(host, port)
    if tls == "starttls":
        smtp.ehlo()
        check(smtp.starttls(context=tls_context(a)), 220)
    return smtp


def check(reply, *ok):
    code = reply[0]
    if code not in ok:
        raise SystemExit(f"smtplib_client: unexpected reply {reply!r}")


def auth_plain(a):
    smtp = connect(a.host, a.port)
    smtp.ehlo()
    smtp.login("alice", "wonderland")  # server offers LOGIN and PLAIN; smtplib prefers PLAIN
    smtp.sendmail(FROM, [BOB], load(a.messages, "smtplib-aiosmtpd-auth-plain"))
    smtp.quit()


def auth_login(a):
    smtp = connect(a.host, a.port)
    smtp.ehlo()
    smtp.user, smtp.password = "alice", "looking-glass"
    try:
        smtp.auth("LOGIN", smtp.auth_login, initial_response_ok=False)
    except smtplib.SMTPAuthenticationError:
        pass
    else:
        raise SystemExit("smtplib_client: wrong password was accepted")
    smtp.user, smtp.password = "alice", "wonderland"
    smtp.auth("LOGIN", smtp.auth_login)
    smtp.sendmail(FROM, [BOB], load(a.messages, "smtplib-aiosmtpd-auth-login"))
    smtp.quit()


def multi(a):
    smtp = connect(a.host, a.port)
    smtp.ehlo()
    check(smtp.docmd("NOOP"), 250)
    smtp.docmd("HELP")  # smtp-sink answers 500: it has no HELP
    smtp.docmd("VRFY", "<bob@example.net>")
    smtp.sendmail(FROM, [BOB], load(a.messages, "smtplib-sink-multi.1"))
    check(smtp.docmd("RSET"), 250)
    smtp.sendmail(FROM, [BOB], load(a.messages, "smtplib-sink-multi.2"),
                  mail_options=["BODY=8BITMIME"])
    check(smtp.docmd("NOOP"), 250)
    check(smtp.docmd("MAIL", f"FROM:<{FROM}>"), 250)  # started, then abandoned
    check(smtp.docmd("RSET"), 250)
    smtp.sendmail(FROM, [BOB, CAROL], load(a.messages, "smtplib-sink-multi.3"))
    smtp.quit()


def send(a):
    smtp = connect(a.host, a.port, a)
    smtp.ehlo()
    smtp.sendmail(FROM, [BOB], load(a.messages, a.message))
    smtp.quit()


def auth_send(a):
    smtp = connect(a.host, a.port, a)
    smtp.ehlo()
    smtp.login("alice", "wonderland")  # server offers LOGIN and PLAIN; smtplib prefers PLAIN
    smtp.sendmail(FROM, [BOB], load(a.messages, a.message))
    smtp.quit()


SCENARIOS = {"auth-plain": auth_plain, "auth-login": auth_login, "multi": multi,
             "send": send, "auth-send": auth_send}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--messages", required=True, help="directory of NAME.eml files")
    p.add_argument("--message", help="NAME of the .eml to send (send, auth-send)")
    p.add_argument("--tls", choices=["starttls", "smtps"],
                   help="send, auth-send: STARTTLS after the first EHLO, or implicit TLS")
    p.add_argument("--keylog", help="write the NSS key log (TLS secrets) to this file")
    p.add_argument("--ciphers", help="TLS <= 1.2 cipher string (SSLContext.set_ciphers)")
    p.add_argument("--tls-max", choices=["1.2", "1.3"], default="1.3")
    a = p.parse_args()
    if a.scenario in ("send", "auth-send") and not a.message:
        p.error(f"{a.scenario} needs --message")
    if a.scenario not in ("send", "auth-send") and (a.message or a.tls):
        p.error("--message and --tls are for the send and auth-send scenarios")
    SCENARIOS[a.scenario](a)


if __name__ == "__main__":
    main()
