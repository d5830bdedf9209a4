package imap

import (
	"testing"
)

func TestLiteralAt(t *testing.T) {
	cases := []struct {
		line    string
		n       int64
		nonSync bool
		ok      bool
	}{
		{"A1 LOGIN {5}\r\n", 5, false, true},
		{"A1 LOGIN {5+}\r\n", 5, true, true},
		{"A1 APPEND INBOX ~{12}\r\n", 12, false, true},
		{"A1 LOGIN {5} \r\n", 5, false, true}, // the library's CRLF takes a space first
		{"A1 LOGIN {5}\n", 5, false, true},    // and a lone LF
		{" {0+}\r\n", 0, true, true},
		{"A1 X {99999999999999999999999+}\r\n", 1<<63 - 1, true, true},
		{"A1 LOGIN {5}", 0, false, false}, // no line end yet
		{"A1 LOGIN {}\r\n", 0, false, false},
		{"A1 LOGIN {+}\r\n", 0, false, false},
		{"A1 LOGIN {5a}\r\n", 0, false, false},
		{"A1 LOGIN 5}\r\n", 0, false, false},
		{"A1 NOOP\r\n", 0, false, false},
		{"A1 LOGIN {5}x\r\n", 0, false, false},
	}
	for _, c := range cases {
		n, nonSync, ok := literalAt([]byte(c.line))
		if n != c.n || nonSync != c.nonSync || ok != c.ok {
			t.Errorf("literalAt(%q) = %d, %v, %v; want %d, %v, %v", c.line, n, nonSync, ok, c.n, c.nonSync, c.ok)
		}
	}
}

func TestWellFormed(t *testing.T) {
	cases := map[string]bool{
		"A1 NOOP\r\n":                         true,
		"A1 NOOP\n":                           true,
		`A1 LOGIN "a \"b\" \\" "c"` + "\r\n":  true,
		`A1 STORE 1 +FLAGS (\Seen)` + "\r\n":  true,
		"A1 NOOP x\rA2 CREATE y\r\n":          false,
		`A1 CREATE "x` + "\r\n":               false,
		`A1 CREATE "x\` + "\r\n":              false,
		`A1 CREATE "x\"` + "\r\n":             false,
		"A1 SEARCH TEXT \"a\rb\" {5+}\r\n":    false,
		`A1 CREATE "x" {5+}` + "\r\n":         true,
		`A1 APPEND INBOX (\Draft) {3}` + "\n": true,
	}
	for line, want := range cases {
		if got := wellFormed([]byte(line)); got != want {
			t.Errorf("wellFormed(%q) = %v", line, got)
		}
	}
}

func TestParseCommand(t *testing.T) {
	cases := []struct {
		line   string
		tag    string
		verb   string
		append bool
		msgLit int
	}{
		{"a1 append INBOX {5}\r\n", "a1", "APPEND", true, 0},
		{"a1 APPEND {5}\r\n", "a1", "APPEND", true, 1},
		{"a1 APPEND \"x\" (\\Seen) {5}\r\n", "a1", "APPEND", true, 0},
		{"a1 uid fetch 1 (FLAGS)\r\n", "a1", "UID FETCH", false, 0},
		{"a1 NOOP\r\n", "a1", "NOOP", false, 0},
	}
	for _, c := range cases {
		cmd := parseCommand([]byte(c.line))
		if cmd.tag != c.tag || cmd.verb != c.verb || cmd.append != c.append || cmd.msgLit != c.msgLit {
			t.Errorf("parseCommand(%q) = %+v", c.line, cmd)
		}
	}
	for tag, want := range map[string]bool{"a1": true, "A.001": true, "": false, "+": false, "a+1": false, "*": false, "a{": false, "a\x01": false} {
		if validTag(tag) != want {
			t.Errorf("validTag(%q) = %v", tag, !want)
		}
	}
}

func TestSetLiteralSize(t *testing.T) {
	if got := string(setLiteralSize([]byte("INBOX {5000}\r\n"), 104857601)); got != "INBOX {104857601}\r\n" {
		t.Fatalf("got %q", got)
	}
}

// The server→client stream: only the start of a response is looked at, never
// the inside of a literal, however the writes split it.
func TestTrackOut(t *testing.T) {
	c := &cmdConn{srv: &Server{opt: Options{MaxMessageBytes: 1234}}, tls: true, outTail: make([]byte, 0, 32)}
	body := "line\r\n+ OK\r\n* CAPABILITY IMAP4rev1 APPENDLIMIT\r\nA1 OK done\r\n"
	writes := []struct {
		p     string
		start bool
	}{
		{"* 1 FETCH (BODY[] {" + itoa(len(body)) + "}\r\n" + body[:6], true},
		{body[6:12], false},      // "+ OK\r\n" inside the literal
		{body[12:], false},       // the rest of the literal
		{")\r\n", false},         // the end of the response
		{"* 2 EXISTS\r\n", true}, // a response
		{"* 3 FETCH (BODY[] {3", true},
		{"0}\r\n" + "0123456789012345678901234567\r\n" + ")\r\n", false},
		{"A1 OK FETCH completed\r\n", true},
	}
	for i, w := range writes {
		if got := c.trackOut([]byte(w.p)); got != w.start {
			t.Fatalf("write %d (%q): start %v", i, w.p, got)
		}
	}
	// A response split after its first line's end in the middle of a
	// literal header's tail: the tail is kept across writes.
	c.trackOut([]byte("* 4 FETCH (BODY[] {2"))
	c.trackOut([]byte("}\r"))
	c.trackOut([]byte("\n"))
	if c.outLit != 2 || !c.outMid {
		t.Fatalf("literal header across writes: lit %d mid %v", c.outLit, c.outMid)
	}
}

func itoa(n int) string {
	var b []byte
	for {
		b = append([]byte{byte('0' + n%10)}, b...)
		if n /= 10; n == 0 {
			return string(b)
		}
	}
}

func TestCompleteCaps(t *testing.T) {
	c := &cmdConn{srv: &Server{opt: Options{MaxMessageBytes: 1234}}, tls: true}
	cases := map[string]string{
		"* CAPABILITY IMAP4rev1 APPENDLIMIT LITERAL+\r\n":        "* CAPABILITY IMAP4rev1 APPENDLIMIT=1234 LITERAL+ ID\r\n",
		"A1 OK [CAPABILITY IMAP4rev2 APPENDLIMIT] Logged in\r\n": "A1 OK [CAPABILITY IMAP4rev2 APPENDLIMIT=1234 ID] Logged in\r\n",
		"* OK [CAPABILITY IMAP4rev1] IMAP server ready\r\n":      "* OK [CAPABILITY IMAP4rev1 ID] IMAP server ready\r\n",
		"* 1 FETCH (FLAGS (APPENDLIMIT))\r\n":                    "* 1 FETCH (FLAGS (APPENDLIMIT))\r\n",
		"A1 OK APPENDLIMIT\r\n":                                  "A1 OK APPENDLIMIT\r\n",
	}
	for in, want := range cases {
		if got := string(c.completeCaps([]byte(in))); got != want {
			t.Errorf("completeCaps(%q) = %q, want %q", in, got, want)
		}
	}
}
