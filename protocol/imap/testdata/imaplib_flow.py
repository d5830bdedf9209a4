"""Drives mailgate's IMAP server with Python's imaplib, as a mail script would.

Usage: imaplib_flow.py HOST PORT USER PASSWORD
The Go test seeds INBOX with three messages (subjects first, second, third)
and, when this script prints IDLING, delivers one more; the script prints
EXISTS as soon as the server announces it. Any failure exits non-zero.
"""
import imaplib
import re
import sys
import time


def ok(result, what):
    typ, data = result
    if typ != "OK":
        sys.exit(f"FAIL {what}: {typ} {data!r}")
    return data


host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
m = imaplib.IMAP4(host, port)
ok(m.login(user, password), "login")

boxes = ok(m.list(), "list")
if not any(b"INBOX" in b for b in boxes) or not any(b"\\Sent" in b for b in boxes):
    sys.exit(f"FAIL list: {boxes!r}")
ok(m.create("Archive"), "create")

count = int(ok(m.select("INBOX"), "select")[0])
if count != 3:
    sys.exit(f"FAIL select: {count} messages")

found = ok(m.search(None, "SUBJECT", '"second"'), "search")
if found != [b"2"]:
    sys.exit(f"FAIL search: {found!r}")
found = ok(m.uid("SEARCH", "UNSEEN"), "uid search")
if found != [b"1 2 3"]:
    sys.exit(f"FAIL uid search: {found!r}")

data = ok(m.fetch("2", "(RFC822)"), "fetch")
body = data[0][1]
if b"Subject: second" not in body or not body.endswith(b"Hello number 2.\r\n"):
    sys.exit(f"FAIL fetch: {data!r}")
data = ok(m.fetch("2", "(FLAGS)"), "fetch flags")
if b"\\Seen" not in data[0]:
    sys.exit(f"FAIL fetch set no \\Seen: {data!r}")

data = ok(m.store("2", "+FLAGS", "(\\Flagged)"), "store")
if b"\\Flagged" not in data[0]:
    sys.exit(f"FAIL store: {data!r}")

ok(m.copy("1", "Archive"), "copy")
typ, data = m.uid("MOVE", "3", "Archive")
if typ != "OK":
    sys.exit(f"FAIL move: {typ} {data!r}")
typ, data = m.response("EXPUNGE")  # MOVE reports the moved message gone
if data != [b"3"]:
    sys.exit(f"FAIL move expunge: {data!r}")

ok(m.store("1", "+FLAGS", "(\\Deleted)"), "store deleted")
data = ok(m.expunge(), "expunge")
if data != [b"1"]:
    sys.exit(f"FAIL expunge: {data!r}")

msg = b"From: py@example.com\r\nSubject: appended\r\n\r\nfrom imaplib\r\n"
typ, data = m.append("INBOX", "(\\Seen)", imaplib.Time2Internaldate(time.time()), msg)
if typ != "OK" or not re.search(rb"APPENDUID \d+ 4", data[0]):
    sys.exit(f"FAIL append: {typ} {data!r}")

status = ok(m.status("Archive", "(MESSAGES)"), "status")
if b"MESSAGES 2" not in status[0]:
    sys.exit(f"FAIL status: {status!r}")

# IDLE through the raw protocol: imaplib has no IDLE command.
ok(m.noop(), "noop")
tag = m._new_tag()
m.send(tag + b" IDLE\r\n")
line = m.readline()
if not line.startswith(b"+"):
    sys.exit(f"FAIL idle: {line!r}")
print("IDLING", flush=True)
m.sock.settimeout(10)
while True:
    line = m.readline()
    if not line:
        sys.exit("FAIL idle: connection closed")
    if line.endswith(b"EXISTS\r\n"):
        print("EXISTS", line.decode().strip(), flush=True)
        break
m.send(b"DONE\r\n")
while True:
    line = m.readline()
    if line.startswith(tag):
        if b" OK" not in line:
            sys.exit(f"FAIL idle done: {line!r}")
        break
m.logout()
print("PASS", flush=True)
