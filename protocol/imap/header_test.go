package imap

import (
	"bufio"
	"bytes"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"
)

func fieldsOf(t *testing.T, b []byte) string {
	t.Helper()
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(b)))
	if err != nil {
		return "unparsable"
	}
	var out []string
	for f := h.Fields(); f.Next(); {
		out = append(out, strings.ToLower(f.Key())+": "+strings.Join(strings.Fields(f.Value()), " "))
	}
	return strings.Join(out, "\n")
}

// FuzzFilterHeader checks filterHeader against go-imap's extractor: the same
// fields, with the same values, in the same order.
func FuzzFilterHeader(f *testing.F) {
	f.Add("From: a@b\r\nSubject: hi\r\n there\r\nTo: c@d\r\nX-A: 1\r\n\r\nbody\r\n", "subject,to", false)
	f.Add("Received: x\r\nReceived: y\r\n\tz\r\nSubject: s\r\n\r\n", "received", true)
	f.Add("subject:no space\r\n\r\n", "SUBJECT", false)
	f.Fuzz(func(t *testing.T, header, names string, not bool) {
		if !strings.HasSuffix(header, "\r\n\r\n") || strings.Contains(strings.TrimSuffix(header, "\r\n\r\n"), "\r\n\r\n") ||
			strings.ContainsAny(strings.ReplaceAll(header, "\r\n", ""), "\r\n") {
			return // only well-formed CRLF headers, as the spool stores them
		}
		list := strings.Split(names, ",")
		item := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader}
		if not {
			item.HeaderFieldsNot = list
		} else {
			item.HeaderFields = list
		}
		want := imapserver.ExtractBodySection(strings.NewReader(header), item)
		if want == nil {
			return // the library could not parse it either
		}
		got := filterHeader([]byte(header), list, not)
		if !bytes.HasSuffix(got, []byte("\r\n")) || fieldsOf(t, got) != fieldsOf(t, want) {
			t.Fatalf("filterHeader(%q, %q, %v) = %q, library %q", header, list, not, got, want)
		}
	})
}
