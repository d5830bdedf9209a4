package imap_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"

	"github.com/mailgate/mailgate/models"
)

const multipartMsg = "From: Carol <carol@remote.example>\r\n" +
	"To: alice@example.com\r\n" +
	"Subject: Report\r\n" +
	"Date: Tue, 03 Jan 2006 10:00:00 +0100\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"b1\"\r\n" +
	"\r\n" +
	"preamble\r\n" +
	"--b1\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	"See the attached numbers.\r\n" +
	"--b1\r\n" +
	"Content-Type: application/octet-stream; name=\"n.bin\"\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"Content-Disposition: attachment; filename=\"n.bin\"\r\n" +
	"\r\n" +
	"AAECAwQ=\r\n" +
	"--b1--\r\n"

func TestCapabilitiesAndLogin(t *testing.T) {
	e := newEnv(t)
	r := dialRaw(t, e.addr)
	u := r.expectOK("CAPABILITY")
	for _, c := range []string{"IMAP4rev1", "IMAP4rev2", "AUTH=PLAIN", "LITERAL-", "SASL-IR"} {
		if !hasLine(u, c) {
			t.Errorf("capability %s missing from %q", c, u)
		}
	}
	if _, st := r.cmd("LOGIN " + testUser + " wrong-password"); !strings.HasPrefix(st, "NO [AUTHENTICATIONFAILED]") {
		t.Fatalf("bad password: %s", st)
	}
	r.login()
	u = r.expectOK("CAPABILITY")
	for _, c := range []string{"LITERAL+", "IDLE", "UIDPLUS", "MOVE", "UNSELECT", "NAMESPACE", "ENABLE", "SPECIAL-USE", "CREATE-SPECIAL-USE",
		"ESEARCH", "SEARCHRES", "CHILDREN", "LIST-EXTENDED", "LIST-STATUS", "BINARY", "APPENDLIMIT"} {
		if !hasLine(u, c) {
			t.Errorf("capability %s missing after login: %q", c, u)
		}
	}
	// go-imap advertises the APPENDLIMIT=n of the server's capabilities as a
	// bare APPENDLIMIT: the number comes with STATUS (RFC 7889 §3).
	if u := r.expectOK("STATUS INBOX (APPENDLIMIT)"); !hasLine(u, "APPENDLIMIT 2097152") {
		t.Errorf("STATUS APPENDLIMIT: %q", u)
	}
	u = r.expectOK("NAMESPACE")
	if !hasLine(u, `* NAMESPACE (("" "/")) NIL NIL`) {
		t.Errorf("namespace %q", u)
	}

	// AUTHENTICATE PLAIN through go-imap's client.
	c, err := imapDial(e.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Authenticate(sasl.NewPlainClient("", testUser, testPass)); err != nil {
		t.Fatalf("AUTHENTICATE PLAIN: %v", err)
	}
}

func TestTooManyLoginFailuresCloseTheConnection(t *testing.T) {
	e := newEnv(t)
	r := dialRaw(t, e.addr)
	for i := 0; i < 3; i++ {
		if _, st := r.cmd(fmt.Sprintf("LOGIN %s nope-%d", testUser, i)); !strings.HasPrefix(st, "NO") {
			t.Fatalf("failure %d: %s", i, st)
		}
	}
	// The third failure is followed by BYE and the end of the connection.
	r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest, _ := readAll(r)
	if !strings.Contains(rest, "* BYE") {
		t.Fatalf("no BYE after repeated failures: %q", rest)
	}

	// The same through AUTHENTICATE PLAIN, where the library holds its writer
	// for the whole exchange.
	r = dialRaw(t, e.addr)
	wrong := base64.StdEncoding.EncodeToString([]byte("\x00" + testUser + "\x00nope"))
	for i := 0; i < 3; i++ {
		if _, st := r.cmd("AUTHENTICATE PLAIN " + wrong); !strings.HasPrefix(st, "NO") {
			t.Fatalf("AUTHENTICATE failure %d: %s", i, st)
		}
	}
	r.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if rest, _ := readAll(r); !strings.Contains(rest, "* BYE") {
		t.Fatalf("no BYE after repeated AUTHENTICATE failures: %q", rest)
	}
}

func TestMailboxesListAndStatus(t *testing.T) {
	e := newEnv(t)
	r := dialRaw(t, e.addr)
	r.login()
	r.expectOK("CREATE Projects/2024/Q1")
	r.expectOK(`CREATE Archive (USE (\Archive))`)
	if _, st := r.cmd(`CREATE Virtual (USE (\All))`); !strings.HasPrefix(st, "NO [USEATTR]") {
		t.Errorf("CREATE USE \\All: %s", st)
	}
	if _, st := r.cmd("CREATE inbox"); !strings.HasPrefix(st, "NO [ALREADYEXISTS]") {
		t.Errorf("CREATE inbox: %s", st)
	}
	if _, st := r.cmd("CREATE a//b"); !strings.HasPrefix(st, "NO [CANNOT]") {
		t.Errorf("CREATE a//b: %s", st)
	}
	u := r.expectOK(`LIST "" "*"`)
	for _, want := range [][]string{
		{`\HasNoChildren`, ` INBOX`}, {`\Sent`, `Sent`}, {`\Drafts`, `Drafts`}, {`\Trash`, `Trash`}, {`\Junk`, `Junk`},
		{`\Archive`, `Archive`}, {`\HasChildren`, `Projects`}, {`\HasChildren`, `Projects/2024`}, {`\HasNoChildren`, `Projects/2024/Q1`},
	} {
		if !hasLine(u, want...) {
			t.Errorf("LIST * lacks %v: %q", want, u)
		}
	}
	u = r.expectOK(`LIST "" "%"`)
	if hasLine(u, "Projects/2024") || !hasLine(u, `"Projects"`) {
		t.Errorf("LIST %% went below the top level: %q", u)
	}
	u = r.expectOK(`LIST "" ""`)
	if !hasLine(u, `* LIST (\Noselect) "/" ""`) {
		t.Errorf(`LIST "" "": %q`, u)
	}
	// A deleted parent leaves a level without a mailbox.
	r.expectOK("DELETE Projects/2024")
	u = r.expectOK(`LIST "" "Projects/%"`)
	if !hasLine(u, `\Noselect`, `Projects/2024`) {
		t.Errorf("missing parent not \\Noselect: %q", u)
	}
	u = r.expectOK(`LIST (SPECIAL-USE) "" "*" RETURN (STATUS (MESSAGES UIDNEXT))`)
	if !hasLine(u, `\Sent`) || hasLine(u, ` INBOX`) || !hasLine(u, `* STATUS "Sent" (MESSAGES 0 UIDNEXT 1)`) {
		t.Errorf("LIST (SPECIAL-USE) RETURN (STATUS): %q", u)
	}
	r.expectOK("RENAME Projects Work")
	u = r.expectOK(`LIST "" "Work/*"`)
	if !hasLine(u, "Work/2024/Q1") {
		t.Errorf("rename did not move children: %q", u)
	}
	r.expectOK("UNSUBSCRIBE Junk")
	u = r.expectOK(`LSUB "" "*"`)
	if hasLine(u, "Junk") || !hasLine(u, "LSUB", "Trash") {
		t.Errorf("LSUB: %q", u)
	}
	u = r.expectOK(`LIST (SUBSCRIBED) "" "*"`)
	if hasLine(u, `"Junk"`) || !hasLine(u, `\Subscribed`, `Trash`) {
		t.Errorf("LIST (SUBSCRIBED): %q", u)
	}
	if _, st := r.cmd("DELETE INBOX"); !strings.HasPrefix(st, "NO") {
		t.Errorf("DELETE INBOX: %s", st)
	}
	if _, st := r.cmd("SELECT Nope"); !strings.HasPrefix(st, "NO [NONEXISTENT]") {
		t.Errorf("SELECT Nope: %s", st)
	}
	e.appendMsg(t, "INBOX", testMessage(1, "one"), models.Flags{Deleted: true})
	e.appendMsg(t, "INBOX", testMessage(2, "two"), models.Flags{Seen: true})
	u = r.expectOK("STATUS INBOX (MESSAGES UNSEEN DELETED SIZE UIDNEXT UIDVALIDITY RECENT APPENDLIMIT)")
	if !hasLine(u, "MESSAGES 2", "UNSEEN 1", "DELETED 1", "UIDNEXT 3", "RECENT 2", "APPENDLIMIT 2097152") {
		t.Errorf("STATUS: %q", u)
	}
	// APPEND to a missing mailbox asks the client to create it.
	if _, st := r.cmd("APPEND Missing {3+}\r\nabc"); !strings.HasPrefix(st, "NO [TRYCREATE]") {
		t.Errorf("APPEND to missing mailbox: %s", st)
	}
}

func TestSelectFetchStoreExpunge(t *testing.T) {
	e := newEnv(t)
	e.deliver(t, testMessage(1, "first"))
	e.appendMsg(t, "INBOX", multipartMsg, models.Flags{Flagged: true, Keywords: []string{"$Label1"}})
	e.deliver(t, testMessage(3, "third"))
	c := e.client(t, nil)
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 3 || sel.UIDNext != 4 || sel.UIDValidity == 0 {
		t.Fatalf("SELECT = %+v", sel)
	}

	msgs, err := c.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{
		UID: true, Flags: true, InternalDate: true, RFC822Size: true, Envelope: true,
		BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
		BodySection: []*imap.FetchItemBodySection{
			{Peek: true},
			{Specifier: imap.PartSpecifierHeader, Peek: true},
			{Specifier: imap.PartSpecifierText, Peek: true, Partial: &imap.SectionPartial{Offset: 0, Size: 8}},
			{Part: []int{1}, Peek: true},
			{Part: []int{2}, Specifier: imap.PartSpecifierMIME, Peek: true},
			{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}, Peek: true},
		},
		BinarySection: []*imap.FetchItemBinarySection{{Part: []int{2}, Peek: true}},
	}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("FETCH: %v, %d messages", err, len(msgs))
	}
	m := msgs[0]
	if m.UID != 2 || m.RFC822Size != int64(len(multipartMsg)) || m.Envelope == nil || m.Envelope.Subject != "Report" {
		t.Fatalf("FETCH data %+v", m)
	}
	if !hasFlag(m.Flags, imap.FlagFlagged) || !hasFlag(m.Flags, "$Label1") || hasFlag(m.Flags, imap.FlagSeen) {
		t.Errorf("flags %v (keyword case must be kept)", m.Flags)
	}
	mp, ok := m.BodyStructure.(*imap.BodyStructureMultiPart)
	if !ok || len(mp.Children) != 2 || mp.Subtype != "mixed" {
		t.Fatalf("BODYSTRUCTURE %#v", m.BodyStructure)
	}
	hdrEnd := strings.Index(multipartMsg, "\r\n\r\n") + 4
	want := []string{multipartMsg, multipartMsg[:hdrEnd], multipartMsg[hdrEnd : hdrEnd+8], "See the attached numbers.",
		"Content-Type: application/octet-stream", "Subject: Report\r\n\r\n"}
	for i, w := range want {
		got := string(m.BodySection[i].Bytes)
		if i == 3 || i == 4 {
			if !strings.Contains(got, w) {
				t.Errorf("section %d = %q, want it to contain %q", i, got, w)
			}
			continue
		}
		if got != w {
			t.Errorf("section %d = %q, want %q", i, got, w)
		}
	}
	if bin := m.BinarySection[0].Bytes; !bytes.Equal(bin, []byte{0, 1, 2, 3, 4}) {
		t.Errorf("BINARY[2] = %v", bin)
	}

	// BODY[] without PEEK sets \Seen and reports it.
	msgs, err = c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect()
	if err != nil || len(msgs) != 1 || !hasFlag(msgs[0].Flags, imap.FlagSeen) {
		t.Fatalf("FETCH BODY[]: %v %+v", err, msgs)
	}

	// STORE, then the flags persist.
	res, err := c.Store(imap.UIDSetNum(3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted, "Important"}}, nil).Collect()
	if err != nil || len(res) != 1 || res[0].UID != 3 || !hasFlag(res[0].Flags, imap.FlagDeleted) {
		t.Fatalf("UID STORE: %v %+v", err, res)
	}
	msgs, err = c.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{Flags: true, UID: true}).Collect()
	if err != nil || len(msgs) != 3 || !hasFlag(msgs[2].Flags, "Important") || !hasFlag(msgs[0].Flags, imap.FlagSeen) {
		t.Fatalf("flags after STORE: %v %+v", err, msgs)
	}

	// EXPUNGE removes message 3 and the rest keep their order.
	exp, err := c.Expunge().Collect()
	if err != nil || len(exp) != 1 || exp[0] != 3 {
		t.Fatalf("EXPUNGE = %v, %v", exp, err)
	}
	msgs, err = c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true}).Collect()
	if err != nil || len(msgs) != 2 || msgs[1].UID != 2 {
		t.Fatalf("after EXPUNGE: %v %+v", err, msgs)
	}

	// APPEND to the selected mailbox reports EXISTS; UIDs keep growing.
	body := testMessage(9, "appended")
	ac := c.Append("INBOX", int64(len(body)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}, Time: time.Date(2020, 5, 6, 7, 8, 9, 0, time.UTC)})
	ac.Write([]byte(body))
	ac.Close()
	ad, err := ac.Wait()
	if err != nil || ad.UID != 4 || ad.UIDValidity != sel.UIDValidity {
		t.Fatalf("APPEND = %+v, %v", ad, err)
	}
	if n := c.Mailbox().NumMessages; n != 3 {
		t.Errorf("client thinks %d messages after APPEND", n)
	}
	msgs, err = c.Fetch(imap.UIDSetNum(4), &imap.FetchOptions{InternalDate: true, Flags: true}).Collect()
	if err != nil || len(msgs) != 1 || !msgs[0].InternalDate.Equal(time.Date(2020, 5, 6, 7, 8, 9, 0, time.UTC)) || !hasFlag(msgs[0].Flags, imap.FlagSeen) {
		t.Fatalf("appended message: %v %+v", err, msgs)
	}
}

func TestExamineIsReadOnly(t *testing.T) {
	e := newEnv(t)
	e.deliver(t, testMessage(1, "one"))
	r := dialRaw(t, e.addr)
	r.login()
	u, st := r.cmd("EXAMINE INBOX")
	if !strings.HasPrefix(st, "OK [READ-ONLY]") || !hasLine(u, "PERMANENTFLAGS ()") {
		t.Fatalf("EXAMINE: %s %q", st, u)
	}
	u = r.expectOK("FETCH 1 BODY[]")
	if hasLine(u, `\Seen`) {
		t.Errorf("FETCH BODY[] in EXAMINE set \\Seen: %q", u)
	}
	for _, c := range []string{`STORE 1 +FLAGS (\Deleted)`, "EXPUNGE", "UID EXPUNGE 1", "MOVE 1 Trash"} {
		if _, st := r.cmd(c); !strings.HasPrefix(st, "NO [READ-ONLY]") {
			t.Errorf("%s in EXAMINE: %s", c, st)
		}
	}
	r.expectOK("COPY 1 Trash") // reading is allowed
	r.expectOK("CLOSE")        // and CLOSE expunges nothing, silently
	u = r.expectOK("SELECT INBOX")
	if !hasLine(u, "1 EXISTS") {
		t.Fatalf("after EXAMINE: %q", u)
	}
	if u := r.expectOK("FETCH 1 FLAGS"); hasLine(u, `\Seen`) {
		t.Errorf("EXAMINE left \\Seen: %q", u)
	}
}

func hasFlag(flags []imap.Flag, f imap.Flag) bool {
	for _, x := range flags {
		if strings.EqualFold(string(x), string(f)) && (f[0] == '\\' || x == f) {
			return true
		}
	}
	return false
}

// CLOSE expunges \Deleted messages without EXPUNGE responses (RFC 9051 §6.4.1).
func TestCloseExpungesSilently(t *testing.T) {
	e := newEnv(t)
	for i := 1; i <= 3; i++ {
		e.deliver(t, testMessage(i, "x"))
	}
	r := dialRaw(t, e.addr)
	r.login()
	r.expectOK("SELECT INBOX")
	r.expectOK(`STORE 2 +FLAGS.SILENT (\Deleted)`)
	if u := r.expectOK("CLOSE"); len(u) != 0 {
		t.Fatalf("CLOSE said %q", u)
	}
	if u := r.expectOK("SELECT INBOX"); !hasLine(u, "* 2 EXISTS") {
		t.Fatalf("after CLOSE: %q", u)
	}
	if u := r.expectOK("UID FETCH 1:* FLAGS"); len(u) != 2 || hasLine(u, "UID 2") {
		t.Fatalf("after CLOSE: %q", u)
	}
	r.expectOK("UNSELECT")
	if _, st := r.cmd("FETCH 1 FLAGS"); !strings.HasPrefix(st, "BAD") {
		t.Fatalf("FETCH after UNSELECT: %s", st)
	}
}

// A client that enables IMAP4rev2 (RFC 9051) gets its responses: LIST in
// SELECT, ESEARCH, no \Recent anywhere; and takes no \Recent from others.
func TestEnableIMAP4rev2(t *testing.T) {
	e := newEnv(t)
	e.deliver(t, testMessage(1, "x"))
	r := dialRaw(t, e.addr)
	r.login()
	if u := r.expectOK("ENABLE IMAP4rev2"); !hasLine(u, "* ENABLED IMAP4rev2") {
		t.Fatalf("ENABLE: %q", u)
	}
	u := r.expectOK("SELECT Sent")
	if !hasLine(u, `* LIST (\Sent) "/" "Sent"`) || hasLine(u, "RECENT") {
		t.Fatalf("SELECT under rev2: %q", u)
	}
	u = r.expectOK("SELECT INBOX")
	if hasLine(u, "RECENT") || hasLine(u, "UNSEEN") {
		t.Fatalf("SELECT INBOX under rev2: %q", u)
	}
	if u := r.expectOK("FETCH 1 FLAGS"); hasLine(u, `\Recent`) {
		t.Fatalf("FETCH under rev2: %q", u)
	}
	if u := r.expectOK("SEARCH ALL"); len(u) != 1 || !strings.HasPrefix(u[0], "* ESEARCH") || !strings.HasSuffix(u[0], "ALL 1") {
		t.Fatalf("SEARCH under rev2: %q", u)
	}
	// The message is still recent for an IMAP4rev1 session.
	old := dialRaw(t, e.addr)
	old.login()
	if u := old.expectOK("SELECT INBOX"); !hasLine(u, "* 1 RECENT") {
		t.Fatalf("rev1 SELECT after a rev2 one: %q", u)
	}
}
