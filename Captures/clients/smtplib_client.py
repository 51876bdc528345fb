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

Message files are read from --messages (LF line endings on disk) and sent
with CRLF line endings; smtplib does the dot-stuffing.
"""

import argparse
import os
import smtplib
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


def connect(host, port):
    smtp = smtplib.SMTP(local_hostname=CLIENT_NAME, timeout=30)
    smtp.set_debuglevel(1)
    smtp.connect(host, port)
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


SCENARIOS = {"auth-plain": auth_plain, "auth-login": auth_login, "multi": multi}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("scenario", choices=sorted(SCENARIOS))
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--messages", required=True, help="directory of NAME.eml files")
    a = p.parse_args()
    SCENARIOS[a.scenario](a)


if __name__ == "__main__":
    main()
