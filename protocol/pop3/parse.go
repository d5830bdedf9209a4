package pop3

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
)

const (
	// maxCommandLine is the longest command line, CRLF included (RFC 2449 §4).
	maxCommandLine = 255
	// maxAuthLine is the longest SASL response line. RFC 5034 §4 exempts those
	// from the 255-octet limit; PLAIN with a long password fits easily.
	maxAuthLine = 8192
	// maxDiscard is how much of an over-long line is skipped while looking for
	// its end before the session gives up on resynchronising.
	maxDiscard = 1 << 20
)

var (
	errLineTooLong = errors.New("line too long")
	errLost        = errors.New("could not find the end of an over-long line")
)

// readLine reads one line ending in CRLF (a bare LF is accepted) and returns it
// without the line ending. A line longer than max octets, line ending included,
// is consumed to its end and reported as errLineTooLong, so the session can go
// on with the next line; if no end shows up within maxDiscard octets, errLost.
// The returned slice is valid until the next read from r.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if err == nil && len(line) <= max {
		return trimEOL(line), nil
	}
	if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, err // EOF or a network error, possibly mid-line
	}
	if err == nil {
		return nil, errLineTooLong
	}
	// The buffer filled before the end of the line: keep what fits in max,
	// copied, since the next ReadSlice overwrites the buffer.
	long := len(line) > max
	var acc []byte
	if !long {
		acc = append(acc, line...)
	}
	skipped := len(line)
	for {
		line, err = r.ReadSlice('\n')
		skipped += len(line)
		if !long && len(acc)+len(line) > max {
			long, acc = true, nil
		}
		if !long {
			acc = append(acc, line...)
		}
		switch {
		case err == nil && long:
			return nil, errLineTooLong
		case err == nil:
			return trimEOL(acc), nil
		case !errors.Is(err, bufio.ErrBufferFull):
			return nil, err
		case skipped > maxDiscard:
			return nil, errLost
		}
	}
}

func trimEOL(line []byte) []byte {
	line = bytes.TrimSuffix(line, []byte{'\n'})
	return bytes.TrimSuffix(line, []byte{'\r'})
}

var (
	errEmptyCommand = &protoError{text: "Empty command"}
	errBadKeyword   = &protoError{text: "Unknown command"}
	errBadChars     = &protoError{text: "Command contains control characters"}
)

// parseCommand splits a command line into its keyword, upper-cased, and the
// rest of the line after the one space that follows the keyword (RFC 1939 §3:
// keywords are three or four letters, case-insensitive). The rest is left
// whole: PASS takes it verbatim, since passwords may contain spaces.
func parseCommand(line []byte) (keyword, arg string, err error) {
	for _, c := range line {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return "", "", errBadChars
		}
	}
	s := string(line)
	kw, arg, _ := strings.Cut(s, " ")
	if kw == "" {
		if strings.TrimSpace(s) == "" {
			return "", "", errEmptyCommand
		}
		return "", "", errBadKeyword
	}
	if len(kw) > 4 {
		return "", "", errBadKeyword
	}
	for i := 0; i < len(kw); i++ {
		c := kw[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return "", "", errBadKeyword
		}
	}
	return strings.ToUpper(kw), arg, nil
}

// parseNumber parses a message number or line count: decimal digits only, no
// sign, at most 9 digits (more would be no message anyway).
func parseNumber(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
