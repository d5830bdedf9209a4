package pop3

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/mailgate/mailgate/models"
)

// The TRANSACTION state commands of RFC 1939 §5 and TOP/UIDL of §7. Message
// numbers refer to the snapshot taken at login; sizes are the stored octets,
// exactly what RETR sends before dot-stuffing (stored messages use CRLF).

func (c *conn) stat(arg string) error {
	if arg != "" {
		return errSyntax
	}
	c.writeLine(fmt.Sprintf("+OK %d %d", c.drop.count, c.drop.size))
	return nil
}

func (c *conn) list(arg string) error {
	return c.scanListing(arg, func(b []byte, m *models.MaildropMessage) []byte {
		return strconv.AppendInt(b, m.Size, 10)
	})
}

// uidl gives each message its public id: a random UUID assigned when the
// message was stored in the INBOX, never changed and never given to another
// message (RFC 1939 §7 asks for exactly that), and the id the HTTP API uses.
func (c *conn) uidl(arg string) error {
	return c.scanListing(arg, func(b []byte, m *models.MaildropMessage) []byte {
		return append(b, m.PublicID...)
	})
}

// scanListing answers LIST and UIDL: one message with an argument, else every
// message not marked deleted, as a multi-line reply.
func (c *conn) scanListing(arg string, value func([]byte, *models.MaildropMessage) []byte) error {
	d := c.drop
	b := make([]byte, 0, 64)
	if arg = strings.TrimSpace(arg); arg != "" {
		i, err := d.lookup(arg)
		if err != nil {
			return err
		}
		b = append(b, "+OK "...)
		b = strconv.AppendInt(b, int64(i+1), 10)
		b = append(b, ' ')
		b = append(value(b, &d.msgs[i]), "\r\n"...)
		c.bw.Write(b)
		return nil
	}
	c.writeLine(fmt.Sprintf("+OK %d messages (%d octets)", d.count, d.size))
	for i := range d.msgs {
		if d.deleted[i] {
			continue
		}
		b = strconv.AppendInt(b[:0], int64(i+1), 10)
		b = append(b, ' ')
		b = append(value(b, &d.msgs[i]), "\r\n"...)
		c.bw.Write(b)
	}
	c.writeLine(".")
	return nil
}

func (c *conn) retr(arg string) error {
	i, err := c.drop.lookup(strings.TrimSpace(arg))
	if err != nil {
		return err
	}
	return c.send(i, -1)
}

// top sends a message's header, the blank line and the first n lines of its
// body (RFC 1939 §7).
func (c *conn) top(arg string) error {
	f := strings.Fields(arg)
	if len(f) != 2 {
		return errSyntax
	}
	i, err := c.drop.lookup(f[0])
	if err != nil {
		return err
	}
	n, ok := parseNumber(f[1])
	if !ok {
		return errSyntax
	}
	return c.send(i, n)
}

// send streams message i as a multi-line reply: all of it when lines < 0, else
// for TOP. The first piece is read before +OK goes out, so that a store
// failure is still an -ERR; a failure after that can only end the session
// (nothing is deleted, and the client sees the reply cut short).
func (c *conn) send(i, lines int) error {
	// A transfer: a shutdown lets it finish and answer.
	c.wc.Transfer(true)
	defer c.wc.Transfer(false)
	m := &c.drop.msgs[i]
	if c.buf == nil {
		c.buf = make([]byte, 32<<10)
	}
	// The snapshot has all it takes to stream the content: no lookup per RETR.
	r := c.srv.mbox.Open(c.ctx, &models.Content{ID: m.ContentID, Size: m.Size, ChunkSize: m.ChunkSize}, 0)
	n, err := io.ReadFull(r, c.buf)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		// Expunged elsewhere and swept since the snapshot, or a store failure?
		if _, cerr := c.srv.mbox.Content(c.ctx, m.ContentID); errors.Is(cerr, models.ErrNotFound) {
			return errNoSuchMessage
		}
		return fmt.Errorf("read message %d (uid %d): %w", i+1, m.UID, err)
	}
	first := c.buf[:n]
	if lines >= 0 {
		c.writeLine("+OK Top of message follows")
	} else {
		c.writeLine(fmt.Sprintf("+OK %d octets", m.Size))
	}
	dw := newDotWriter(c.bw)
	var sent int64
	if lines < 0 {
		var k int
		k, err = dw.Write(first)
		sent = int64(k)
		if err == nil {
			var more int64
			more, err = io.CopyBuffer(dw, r, c.buf) // first is written: c.buf is free
			sent += more
		}
	} else {
		err = copyTop(dw, io.MultiReader(bytes.NewReader(first), r), lines)
	}
	if err == nil {
		err = dw.Close()
	}
	if err != nil || lines < 0 && sent != m.Size {
		c.log.Warn("message cut short; closing", "uid", m.UID, "sent", sent, "size", m.Size, "err", err)
		c.done = true
		return nil
	}
	if lines < 0 {
		c.drop.retrieved[i] = true
	}
	return nil
}

// copyTop copies the header, the blank line after it and then n body lines.
func copyTop(w io.Writer, r io.Reader, n int) error {
	br := bufio.NewReaderSize(r, 4096)
	inBody := false
	atStart := true // at the start of a line
	for {
		if inBody && atStart && n == 0 {
			return nil
		}
		chunk, err := br.ReadSlice('\n')
		if len(chunk) > 0 {
			if _, werr := w.Write(chunk); werr != nil {
				return werr
			}
			complete := chunk[len(chunk)-1] == '\n'
			if complete && atStart && !inBody && (len(chunk) == 2 && chunk[0] == '\r' || len(chunk) == 1) {
				inBody = true // the empty line ending the header
			} else if complete && inBody {
				n--
			}
			atStart = complete
		}
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			return nil
		default:
			return err
		}
	}
}

func (c *conn) dele(arg string) error {
	i, err := c.drop.lookup(strings.TrimSpace(arg))
	if err != nil {
		return err
	}
	c.drop.markDeleted(i)
	c.writeLine(fmt.Sprintf("+OK Message %d marked deleted", i+1))
	return nil
}

func (c *conn) noop(arg string) error {
	if arg != "" {
		return errSyntax
	}
	c.writeLine("+OK")
	return nil
}

func (c *conn) rset(arg string) error {
	if arg != "" {
		return errSyntax
	}
	c.drop.reset()
	c.writeLine(fmt.Sprintf("+OK Maildrop has %d messages (%d octets)", c.drop.count, c.drop.size))
	return nil
}
