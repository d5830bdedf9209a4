package imap_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/models"
	mgimap "github.com/mailgate/mailgate/protocol/imap"
)

// lines runs a command and hands its output lines to a channel.
func lines(t *testing.T, cmd *exec.Cmd) (<-chan string, *bytes.Buffer) {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() }) //nolint:errcheck // may have ended
	ch := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			ch <- sc.Text()
		}
		close(ch)
	}()
	return ch, &stderr
}

func expectLine(t *testing.T, ch <-chan string, stderr *bytes.Buffer, prefix string, within time.Duration) string {
	t.Helper()
	select {
	case l, ok := <-ch:
		if !ok || !strings.HasPrefix(l, prefix) {
			t.Fatalf("want %q, got %q (open %v); stderr:\n%s", prefix, l, ok, stderr)
		}
		return l
	case <-time.After(within):
		t.Fatalf("no %q within %v; stderr:\n%s", prefix, within, stderr)
	}
	return ""
}

// Python's imaplib, the seeds' client: login, list, select, search, fetch,
// store, copy, move, expunge, append, and IDLE through the raw protocol,
// where a message delivered meanwhile must show up within a second.
func TestPythonImaplib(t *testing.T) {
	py := needTool(t, "python3", "python3")
	e := newEnv(t)
	for i, s := range []string{"first", "second", "third"} {
		e.deliver(t, testMessage(i+1, s))
	}
	host, port, _ := net.SplitHostPort(e.addr)
	ch, stderr := lines(t, exec.Command(py, "testdata/imaplib_flow.py", host, port, testUser, testPass))
	expectLine(t, ch, stderr, "IDLING", 30*time.Second)
	start := time.Now()
	e.deliver(t, testMessage(5, "while idling"))
	l := expectLine(t, ch, stderr, "EXISTS", 5*time.Second)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("EXISTS reached imaplib %v after delivery", d)
	}
	if l != "EXISTS * 3 EXISTS" {
		t.Errorf("got %q", l)
	}
	expectLine(t, ch, stderr, "PASS", 10*time.Second)
}

// curl speaks IMAP too: list, fetch by UID, and append by upload.
func TestCurl(t *testing.T) {
	curl := needTool(t, "curl", "curl")
	e := newEnv(t)
	e.deliver(t, testMessage(1, "for curl"))
	base := "imap://" + e.addr
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(curl, append([]string{"-sS", "--max-time", "20", "--user", testUser + ":" + testPass}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("curl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := run(base + "/"); !strings.Contains(out, "INBOX") || !strings.Contains(out, `\Sent`) {
		t.Fatalf("curl list: %s", out)
	}
	if out := run(base + "/INBOX;UID=1"); !strings.Contains(out, "Subject: for curl") || !strings.Contains(out, "Hello number 1.") {
		t.Fatalf("curl fetch: %s", out)
	}
	f := filepath.Join(t.TempDir(), "up.eml")
	os.WriteFile(f, []byte("From: curl@example.com\r\nSubject: uploaded\r\n\r\nvia curl\r\n"), 0o600)
	run("-T", f, base+"/Drafts")
	if out := run(base+"/Drafts", "-X", "SEARCH SUBJECT uploaded"); !strings.Contains(out, "SEARCH 1") {
		t.Fatalf("curl search: %s", out)
	}
	if out := run(base + "/INBOX?SUBJECT%20curl"); !strings.Contains(out, "SEARCH 1") {
		t.Fatalf("curl search url: %s", out)
	}
}

// curl and Python's imaplib with STARTTLS, where plaintext login needs TLS:
// no greeting after the handshake, LOGINDISABLED gone, login and mail work.
func TestClientsStartTLS(t *testing.T) {
	e := newEnvWith(t, envOptions{tlsConfig: selfSigned(t), opt: mgimap.Options{Policy: distrust}})
	e.deliver(t, testMessage(1, "over starttls"))
	t.Run("curl", func(t *testing.T) {
		curl := needTool(t, "curl", "curl")
		out, err := exec.Command(curl, "-sS", "--max-time", "20", "--ssl-reqd", "-k", "--user", testUser+":"+testPass,
			"imap://"+e.addr+"/INBOX;UID=1").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Subject: over starttls") {
			t.Fatalf("curl: %v\n%s", err, out)
		}
	})
	t.Run("imaplib", func(t *testing.T) {
		py := needTool(t, "python3", "python3")
		host, port, _ := net.SplitHostPort(e.addr)
		script := `import imaplib, ssl, sys
m = imaplib.IMAP4(sys.argv[1], int(sys.argv[2]))
assert "LOGINDISABLED" in m.capabilities and "STARTTLS" in m.capabilities, m.capabilities
m.starttls(ssl._create_unverified_context())
assert "LOGINDISABLED" not in m.capabilities and "STARTTLS" not in m.capabilities, m.capabilities
m.login(sys.argv[3], sys.argv[4])
typ, data = m.select("INBOX")
assert typ == "OK" and data == [b"1"], (typ, data)
typ, data = m.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
assert b"over starttls" in data[0][1], data
m.logout()
print("PASS")
`
		out, err := exec.Command(py, "-c", script, host, port, testUser, testPass).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "PASS") {
			t.Fatalf("imaplib: %v\n%s", err, out)
		}
	})
}

// mbsyncRun is an mbsync configuration syncing INBOX to a local Maildir.
type mbsyncRun struct {
	t       *testing.T
	bin     string
	dir     string // HOME and the configuration
	maildir string // with a trailing slash
}

func newMbsync(t *testing.T, bin, addr string) *mbsyncRun {
	m := &mbsyncRun{t: t, bin: bin, dir: t.TempDir()}
	m.maildir = filepath.Join(m.dir, "mail") + "/"
	os.MkdirAll(m.maildir, 0o700)
	host, port, _ := net.SplitHostPort(addr)
	conf := fmt.Sprintf(`IMAPAccount mg
Host %s
Port %s
User %s
Pass "%s"
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account mg

MaildirStore local
Path %s
Inbox %sINBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns INBOX
Create Both
Expunge Both
SyncState *
Sync All
`, host, port, testUser, testPass, m.maildir, m.maildir)
	if err := os.WriteFile(filepath.Join(m.dir, "mbsyncrc"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *mbsyncRun) sync() {
	m.t.Helper()
	cmd := exec.Command(m.bin, "-c", filepath.Join(m.dir, "mbsyncrc"), "-V", "sync")
	cmd.Env = append(os.Environ(), "HOME="+m.dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		m.t.Fatalf("mbsync: %v\n%s", err, out)
	}
}

// each calls fn with the path and content of every local message.
func (m *mbsyncRun) each(fn func(path, content string)) {
	for _, d := range []string{"cur", "new"} {
		dir := filepath.Join(m.maildir, "INBOX", d)
		ents, _ := os.ReadDir(dir)
		for _, ent := range ents {
			b, _ := os.ReadFile(filepath.Join(dir, ent.Name()))
			fn(filepath.Join(dir, ent.Name()), string(b))
		}
	}
}

// local maps each local message's subject to its Maildir flags.
func (m *mbsyncRun) local() map[string]string {
	out := map[string]string{}
	m.each(func(path, content string) {
		_, subj, _ := strings.Cut(content, "Subject: ")
		subj, _, _ = strings.Cut(subj, "\n") // mbsync stores LF line ends
		subj = strings.TrimSpace(subj)
		_, fl, _ := strings.Cut(filepath.Base(path), ":2,")
		out[subj] = fl
	})
	return out
}

// mbsync (isync) syncs a mailbox to a Maildir and back, with flag changes
// and deletions on both sides; a third run right after changes nothing.
func TestMbsync(t *testing.T) {
	bin := needTool(t, "mbsync", "isync")
	e := newEnv(t)
	m := newMbsync(t, bin, e.addr)
	for i := 1; i <= 4; i++ {
		e.deliver(t, testMessage(i, fmt.Sprint("sync ", i)))
	}
	m.sync()
	if l := m.local(); len(l) != 4 {
		t.Fatalf("after first sync, local has %v", l)
	}

	// Server side: flag one, delete one (as the HTTP API or POP3 would).
	ctx := context.Background()
	inbox, _ := e.mbox.Get(ctx, e.user.ID, "INBOX")
	if _, err := e.mbox.SetFlags(ctx, inbox.ID, models.UIDs(1), models.FlagsAdd, models.Flags{Flagged: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.mbox.Expunge(ctx, inbox.ID, models.UIDs(2), false); err != nil {
		t.Fatal(err)
	}
	// Local side: mark one seen, delete another, add a new one.
	m.each(func(path, content string) {
		switch {
		case strings.Contains(content, "Subject: sync 3"):
			base, _, _ := strings.Cut(filepath.Base(path), ":2,")
			os.Rename(path, filepath.Join(m.maildir, "INBOX", "cur", base+":2,S"))
		case strings.Contains(content, "Subject: sync 4"):
			os.Remove(path)
		}
	})
	os.WriteFile(filepath.Join(m.maildir, "INBOX", "new", "1700000000.local1.host"),
		[]byte("From: me@example.com\r\nSubject: sync local\r\n\r\nwritten locally\r\n"), 0o600)

	m.sync()
	// Both sides now hold: 1 (flagged), 3 (seen), the local one.
	want := map[string]string{"sync 1": "F", "sync 3": "S", "sync local": ""}
	if l := m.local(); !sameFlags(l, want) {
		t.Fatalf("local after second sync = %v, want %v", l, want)
	}
	r := dialRaw(t, e.addr)
	r.login()
	r.expectOK("SELECT INBOX")
	u := r.expectOK("FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
	wantSrv := map[string][]string{"sync 1": {`\Flagged`}, "sync 3": {`\Seen`}, "sync local": nil}
	if got := serverFlags(u); fmt.Sprint(got) != fmt.Sprint(wantSrv) {
		t.Fatalf("server after second sync = %v, want %v (%q)", got, wantSrv, u)
	}
	r.expectOK("LOGOUT")

	// A third run finds nothing to do: no file on the near side changes and
	// nothing is written on the far side (the modification sequence stays).
	before := listMaildir(t, m.maildir)
	mb, _ := e.mbox.GetByID(ctx, inbox.ID)
	m.sync()
	if after := listMaildir(t, m.maildir); after != before {
		t.Fatalf("third sync changed the Maildir:\n%s\nthen\n%s", before, after)
	}
	if mb2, _ := e.mbox.GetByID(ctx, inbox.ID); mb2.HighestModSeq != mb.HighestModSeq || mb2.UIDNext != mb.UIDNext {
		t.Fatalf("third sync changed the server: modseq %d → %d, uidnext %d → %d", mb.HighestModSeq, mb2.HighestModSeq, mb.UIDNext, mb2.UIDNext)
	}
}

// mbsync over STARTTLS, verifying the server's certificate, where plaintext
// login needs TLS.
func TestMbsyncStartTLS(t *testing.T) {
	bin := needTool(t, "mbsync", "isync")
	tlsConf := selfSigned(t)
	e := newEnvWith(t, envOptions{tlsConfig: tlsConf, opt: mgimap.Options{Policy: distrust}})
	m := newMbsync(t, bin, e.addr)
	certFile := filepath.Join(m.dir, "cert.pem")
	pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsConf.Certificates[0].Certificate[0]})
	if err := os.WriteFile(certFile, pemCert, 0o600); err != nil {
		t.Fatal(err)
	}
	confFile := filepath.Join(m.dir, "mbsyncrc")
	conf, _ := os.ReadFile(confFile)
	conf = bytes.Replace(conf, []byte("SSLType None\n"), []byte("SSLType STARTTLS\nCertificateFile "+certFile+"\n"), 1)
	if err := os.WriteFile(confFile, conf, 0o600); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 2; i++ {
		e.deliver(t, testMessage(i, fmt.Sprint("tls ", i)))
	}
	m.sync()
	if l := m.local(); len(l) != 2 {
		t.Fatalf("after sync over STARTTLS, local has %v", l)
	}
}

// listMaildir names every file under dir, sorted.
func listMaildir(t *testing.T, dir string) string {
	t.Helper()
	var names []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error { //nolint:errcheck // best effort listing
		if err == nil && !d.IsDir() {
			names = append(names, strings.TrimPrefix(p, dir))
		}
		return nil
	})
	sort.Strings(names)
	return strings.Join(names, "\n")
}

func sameFlags(got, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			return false
		}
	}
	return true
}

// serverFlags reads "* n FETCH (FLAGS (...) BODY[...] {n}" responses: the raw
// client puts the literal's lines after the response line.
func serverFlags(u []string) map[string][]string {
	out := map[string][]string{}
	var flags []string
	for _, l := range u {
		if strings.Contains(l, " FETCH (FLAGS (") {
			_, rest, _ := strings.Cut(l, "FLAGS (")
			fl, _, _ := strings.Cut(rest, ")")
			flags = nil
			for _, f := range strings.Fields(fl) {
				if f != `\Recent` {
					flags = append(flags, f)
				}
			}
			sort.Strings(flags)
			continue
		}
		if strings.HasPrefix(l, "Subject: ") {
			out[strings.TrimPrefix(l, "Subject: ")] = flags
		}
	}
	return out
}
