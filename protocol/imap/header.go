package imap

import (
	"bytes"
	"strings"
)

// filterHeader returns the fields of a raw header (CRLF lines, continuation
// lines starting with white space, up to the empty line) whose names are in
// names (not: whose names are not), as they were written, followed by the
// empty line: BODY[HEADER.FIELDS (...)] and HEADER.FIELDS.NOT (RFC 9051
// §6.4.5). It keeps the original bytes, where go-imap's extractor would
// re-fold them, and allocates only the result.
func filterHeader(header []byte, names []string, not bool) []byte {
	out := make([]byte, 0, 256)
	keep := false
	for len(header) > 0 {
		end := bytes.IndexByte(header, '\n') + 1
		if end == 0 {
			end = len(header)
		}
		line := header[:end]
		header = header[end:]
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			break // the empty line ends the header
		}
		if line[0] != ' ' && line[0] != '\t' {
			name, _, ok := bytes.Cut(line, []byte(":"))
			keep = ok && listed(string(bytes.TrimSpace(name)), names) != not
		}
		if keep {
			out = append(out, line...)
		}
	}
	return append(out, '\r', '\n')
}

func listed(name string, names []string) bool {
	for _, n := range names {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}
