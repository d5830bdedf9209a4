package e2e

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// eightBitClients sends two messages holding NUL bytes and bytes that are not
// UTF-8 to alice, one over SMTP (port 25, smtplib) and one by IMAP APPEND
// (imaplib), then reads every message back over POP3 (poplib) and IMAP (BODY[]
// and BINARY[]). It prints one "kind hex" line per message read.
const eightBitClients = `
import binascii, imaplib, poplib, smtplib, sys
smtp_addr, imap_addr, pop_addr, via_smtp, via_imap = sys.argv[1:6]
via_smtp, via_imap = binascii.unhexlify(via_smtp), binascii.unhexlify(via_imap)

host, port = smtp_addr.rsplit(":", 1)
s = smtplib.SMTP(host, int(port), timeout=10)
refused = s.sendmail("someone@elsewhere.test", ["alice@example.com"], via_smtp)
assert not refused, refused
s.quit()

host, port = imap_addr.rsplit(":", 1)
m = imaplib.IMAP4(host, int(port), timeout=10)
m.login("alice@example.com", "alice-secret-1")
typ, data = m.append("INBOX", None, None, via_imap)
assert typ == "OK", (typ, data)
m.select("INBOX", readonly=True)
for kind in ("BODY.PEEK[]", "BINARY.PEEK[]"):
    typ, data = m.fetch("1:*", "(" + kind + ")")
    assert typ == "OK", (typ, data)
    for part in data:
        if isinstance(part, tuple):
            print(kind, binascii.hexlify(part[1]).decode())
m.logout()

host, port = pop_addr.rsplit(":", 1)
p = poplib.POP3(host, int(port), timeout=10)
p.user("alice@example.com")
p.pass_("alice-secret-1")
for item in p.list()[1]:
    n = int(item.split()[0])
    lines = p.retr(n)[1]
    print("RETR", binascii.hexlify(b"\r\n".join(lines) + b"\r\n").decode())
p.quit()
`

// TestNULAndEightBitBytesAcrossFrontEnds: a message with NUL bytes and bytes
// that are not UTF-8, in its header and its body, is stored byte for byte
// whichever front end brings it (SMTP, IMAP APPEND), on either database, and
// reads back the same over HTTP, POP3 and IMAP BINARY[]; IMAP BODY[], whose
// literals may not hold NUL (RFC 9051 4.3), shows each NUL as 0x80, the octet
// count unchanged. What is derived from the message (subject, preview) is
// text, the bad bytes shown as U+FFFD. Over HTTP send, a NUL in a header value
// is refused (400) and one in the text travels quoted-printable.
func TestNULAndEightBitBytesAcrossFrontEnds(t *testing.T) {
	s := Start(t, nil)
	setupMail(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	viaSMTP := []byte("From: Nul\x00 Sender <someone@elsewhere.test>\r\nTo: alice@example.com\r\n" +
		"Subject: smtp \xff\xfe bytes\x00\r\nX-Raw: \xc3\x28\r\n\r\nbody with\x00NUL and \xff\xfe\r\n")
	viaIMAP := []byte("From: someone@elsewhere.test\r\nSubject: imap\x00 \xe9t\xe9\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\nline \x00\x00 two \xff\r\n")
	out := python(t, ctx, eightBitClients, s.Addr["smtp"], s.Addr["imap"], s.Addr["pop3"],
		hex.EncodeToString(viaSMTP), hex.EncodeToString(viaIMAP))

	read := map[string][][]byte{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		kind, h, _ := strings.Cut(line, " ")
		b, err := hex.DecodeString(h)
		if err != nil {
			t.Fatalf("client output %q: %v", line, err)
		}
		read[kind] = append(read[kind], b)
	}

	tok := login(t, s, "alice@example.com", "alice-secret-1")
	st, body := apiDo(t, s, "GET", "/api/v1/messages?mailbox=INBOX", tok, "")
	if st != http.StatusOK {
		t.Fatalf("list: %d %s", st, body)
	}
	var list struct {
		Items []struct {
			ID, Subject, Preview string
		}
	}
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 2 {
		t.Fatalf("alice has %d messages, want 2: %s", len(list.Items), body)
	}
	// The list is newest first; the SMTP message came first.
	wantSent := [][]byte{viaSMTP, viaIMAP}
	wantSubject := []string{"smtp \uFFFD bytes\uFFFD", "imap\uFFFD \uFFFDt\uFFFD"}
	for i, it := range []int{1, 0} {
		item := list.Items[it]
		if item.Subject != wantSubject[i] {
			t.Errorf("message %d: subject %q, want %q", i, item.Subject, wantSubject[i])
		}
		st, raw := apiDo(t, s, "GET", "/api/v1/messages/"+item.ID+"/raw", tok, "")
		if st != http.StatusOK {
			t.Fatalf("raw %d: %d", i, st)
		}
		if !bytes.HasSuffix(raw, wantSent[i]) || (i == 1 && !bytes.Equal(raw, wantSent[i])) {
			t.Errorf("message %d: stored bytes differ from the sent ones:\n%q\nsent\n%q", i, raw, wantSent[i])
		}
		for _, kind := range []string{"RETR", "BINARY.PEEK[]"} {
			if len(read[kind]) != 2 || !bytes.Equal(read[kind][i], raw) {
				t.Errorf("message %d over %s differs from the stored bytes:\n%q", i, kind, read[kind])
			}
		}
		want := bytes.ReplaceAll(raw, []byte{0}, []byte{0x80})
		if len(read["BODY.PEEK[]"]) != 2 || !bytes.Equal(read["BODY.PEEK[]"][i], want) {
			t.Errorf("message %d over IMAP BODY[]: want NUL shown as 0x80:\n%q", i, read["BODY.PEEK[]"])
		}
	}

	// HTTP send: a header value cannot hold NUL; the text can.
	st, body = apiDo(t, s, "POST", "/api/v1/messages", tok, `{"to":["bob@example.com"],"subject":"a\u0000b","text":"x"}`)
	if st != http.StatusBadRequest || !strings.Contains(string(body), "control character") {
		t.Errorf("send with NUL in the subject: %d %s, want 400 naming the control character", st, body)
	}
	st, body = apiDo(t, s, "POST", "/api/v1/messages", tok, `{"to":["alice@example.com"],"subject":"nul text","text":"a\u0000b\u00ff"}`)
	if st != http.StatusAccepted && st != http.StatusCreated {
		t.Fatalf("send with NUL in the text: %d %s", st, body)
	}
	st, body = apiDo(t, s, "GET", "/api/v1/messages?q=nul+text&mailbox=INBOX", tok, "")
	if st != http.StatusOK || !strings.Contains(string(body), "\"preview\":\"a\uFFFDbÿ\"") {
		t.Errorf("sent text's preview: %d %s", st, body)
	}
}
