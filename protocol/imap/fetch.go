package imap

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime/quotedprintable"
	"strconv"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/message"
)

// Rows read per query: FETCH pages through a set so that no database
// connection waits on a slow client and memory stays flat.
const (
	fetchPage        = 500
	fetchPageContent = 100
)

// Fetch answers FETCH and UID FETCH (RFC 9051 §6.4.5). ENVELOPE and
// BODYSTRUCTURE come from what the parser stored at delivery; BODY[],
// BODY[HEADER], BODY[TEXT] (and BODY[1] of a single-part message) stream the
// stored bytes with their exact sizes. Deeper sections and HEADER.FIELDS go
// through go-imap's extractors, which hold that one section in memory; BINARY
// (RFC 3516) takes that section and removes its content transfer encoding
// here (see binarySection). A body fetch without .PEEK sets \Seen, except in
// EXAMINE.
func (s *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) (err error) {
	s.begin()
	defer func() { s.end(uidVerb("FETCH", numSet), err) }()
	v, err := s.selected()
	if err != nil {
		return err
	}
	uids := v.resolve(numSet)
	if len(uids) == 0 {
		return nil
	}
	ctx, cancel := s.opCtx(fetchTimeout)
	defer cancel()
	markSeen := !v.readOnly && setsSeen(options)
	var own []models.FlagChange
	if markSeen {
		if own, err = s.srv.mbox.SetFlags(ctx, s.mailboxID, uids, models.FlagsAdd, models.Flags{Seen: true}); err != nil {
			return s.fail("fetch", err)
		}
	}
	err = s.fetch(ctx, w, v, uids, options, markSeen)
	if markSeen {
		s.applyOwn(ctx, v, own)
	}
	return err
}

func setsSeen(o *imap.FetchOptions) bool {
	for _, b := range o.BodySection {
		if !b.Peek {
			return true
		}
	}
	for _, b := range o.BinarySection {
		if !b.Peek {
			return true
		}
	}
	return false
}

// fetch writes one FETCH response per message of uids. withFlags forces FLAGS
// in (when this fetch set \Seen, RFC 3501 §6.4.5).
func (s *session) fetch(ctx context.Context, w *imapserver.FetchWriter, v *view, uids models.UIDSet, o *imap.FetchOptions, withFlags bool) error {
	var what models.FetchWhat
	if o.Envelope || o.BodyStructure != nil || len(o.BodySection) > 0 || len(o.BinarySection) > 0 || len(o.BinarySectionSize) > 0 {
		what |= models.FetchContent
	}
	for _, b := range o.BodySection {
		if len(b.Part) == 0 && b.Specifier == imap.PartSpecifierHeader {
			what |= models.FetchHeader // the list view: headers come with the page
		}
	}
	page := fetchPage
	if what != 0 {
		page = fetchPageContent
	}
	var after uint32
	for {
		rows, err := s.srv.mbox.FetchPage(ctx, s.mailboxID, uids, after, page, what)
		if err != nil {
			return s.fail("fetch", err)
		}
		seqs, flags := v.rowsView(rows)
		for i := range rows {
			if seqs[i] == 0 {
				continue // expunged meanwhile, or not announced yet
			}
			if err := s.fetchOne(ctx, w, seqs[i], &rows[i], flags[i], o, withFlags); err != nil {
				return err
			}
		}
		if len(rows) < page {
			return nil
		}
		after = rows[len(rows)-1].UID
	}
}

// rowsView gives the client's sequence numbers and flags of a page of rows.
func (v *view) rowsView(rows []models.FetchRow) ([]uint32, [][]imap.Flag) {
	v.st.mu.Lock()
	defer v.st.mu.Unlock()
	seqs := make([]uint32, len(rows))
	flags := make([][]imap.Flag, len(rows))
	for i := range rows {
		seqs[i] = v.seqLocked(rows[i].UID)
		flags[i] = v.imapFlagsLocked(rows[i].UID, rows[i].Flags)
	}
	return seqs, flags
}

// sectionOut is one body or binary section, ready to write: either a byte
// range of the stored content to stream, or bytes already extracted.
type sectionOut struct {
	body          *imap.FetchItemBodySection
	binary        *imap.FetchItemBinarySection
	stream        bool
	offset, count int64
	data          []byte
}

func (s *session) fetchOne(ctx context.Context, w *imapserver.FetchWriter, seq uint32, r *models.FetchRow, flags []imap.Flag, o *imap.FetchOptions, withFlags bool) error {
	// Everything that can fail without breaking the protocol happens before
	// the response starts: decoding, and extracting sections into memory.
	var env *imap.Envelope
	var bs imap.BodyStructure
	var sections []sectionOut
	var binSizes []uint32
	if r.Content != nil {
		if o.Envelope {
			env = s.envelope(r)
		}
		if o.BodyStructure != nil || len(o.BodySection) > 0 || len(o.BinarySection) > 0 || len(o.BinarySectionSize) > 0 {
			bs = s.bodyStructure(r)
		}
		var err error
		if sections, err = s.planSections(ctx, r, bs, o); err != nil {
			return s.failBinary(err)
		}
		for _, b := range o.BinarySectionSize {
			data, err := s.binarySection(ctx, r.Content, bs, b.Part)
			if err != nil {
				return s.failBinary(err)
			}
			binSizes = append(binSizes, uint32(len(data)))
		}
	}
	fixes := binaryFixes(sections)
	if env != nil {
		if fx, ok := envelopeFix(env); ok {
			fixes = append([]binaryFix{fx}, fixes...) // ENVELOPE comes before every BINARY item
		}
	}
	if len(fixes) > 0 {
		armBinaryFixes(s.cc, fixes)
		defer disarmBinaryFixes(s.cc)
	}
	mw := w.CreateMessage(seq)
	if o.UID {
		mw.WriteUID(imap.UID(r.UID))
	}
	if o.Flags || withFlags {
		mw.WriteFlags(flags)
	}
	if o.InternalDate {
		mw.WriteInternalDate(r.InternalDate)
	}
	if o.RFC822Size {
		mw.WriteRFC822Size(r.Size)
	}
	if env != nil {
		mw.WriteEnvelope(env)
	}
	if o.BodyStructure != nil && bs != nil {
		mw.WriteBodyStructure(bs)
	}
	for i, b := range o.BinarySectionSize {
		mw.WriteBinarySectionSize(b, binSizes[i])
	}
	for _, sec := range sections {
		if err := s.writeSection(ctx, mw, r.Content, sec); err != nil {
			// Part of a literal is out: the only honest end is to close.
			s.log.Error("imap fetch: streaming message failed; closing connection", "uid", r.UID, "err", err)
			s.conn.NetConn().Close()
			mw.Close() //nolint:errcheck // the connection is closed
			return errServerBug
		}
	}
	return mw.Close()
}

func (s *session) writeSection(ctx context.Context, mw *imapserver.FetchResponseWriter, c *models.Content, sec sectionOut) error {
	size := int64(len(sec.data))
	if sec.stream {
		size = sec.count
	}
	var wc io.WriteCloser
	if sec.body != nil {
		wc = &noNUL{w: mw.WriteBodySection(sec.body, size)} // nonul.go
	} else {
		wc = mw.WriteBinarySection(sec.binary, size)
	}
	var err error
	if sec.stream {
		// The range reader writes its chunks straight into the literal.
		var n int64
		n, err = io.Copy(wc, s.srv.mbox.OpenRange(ctx, c, sec.offset, sec.count))
		if err == nil && n != sec.count {
			err = fmt.Errorf("content %d: streamed %d bytes of %d", c.ID, n, sec.count)
		}
	} else {
		_, err = wc.Write(sec.data)
	}
	if cerr := wc.Close(); err == nil {
		err = cerr
	}
	return err
}

// planSections decides how each requested section is served.
func (s *session) planSections(ctx context.Context, r *models.FetchRow, bs imap.BodyStructure, o *imap.FetchOptions) ([]sectionOut, error) {
	c := r.Content
	var out []sectionOut
	for _, b := range o.BodySection {
		if r.Header != nil && len(b.Part) == 0 && b.Specifier == imap.PartSpecifierHeader {
			var data []byte
			switch {
			case len(b.HeaderFields) > 0:
				data = filterHeader(r.Header, b.HeaderFields, false)
			case len(b.HeaderFieldsNot) > 0:
				data = filterHeader(r.Header, b.HeaderFieldsNot, true)
			default:
				data = r.Header
			}
			off, cnt := partial(b.Partial, int64(len(data)))
			data = data[off : off+cnt]
			out = append(out, sectionOut{body: b, data: data})
			continue
		}
		if start, n, ok := streamRange(c, bs, b); ok {
			off, cnt := partial(b.Partial, n)
			out = append(out, sectionOut{body: b, stream: true, offset: start + off, count: cnt})
			continue
		}
		limit := c.Size
		if len(b.Part) == 0 && b.Specifier == imap.PartSpecifierHeader {
			limit = c.HeaderSize // HEADER.FIELDS needs the header only
		}
		var data []byte
		err := s.extractRange(ctx, c, limit, func(rd io.Reader) { data = imapserver.ExtractBodySection(rd, b) })
		if err != nil {
			return nil, err
		}
		out = append(out, sectionOut{body: b, data: data})
	}
	for _, b := range o.BinarySection {
		data, err := s.binarySection(ctx, c, bs, b.Part)
		if err != nil {
			return nil, err
		}
		off, cnt := partial(b.Partial, int64(len(data)))
		out = append(out, sectionOut{binary: b, data: data[off : off+cnt]})
	}
	return out, nil
}

// streamRange tells whether a section is a plain byte range of the stored
// message, and which.
func streamRange(c *models.Content, bs imap.BodyStructure, b *imap.FetchItemBodySection) (start, n int64, ok bool) {
	hdr := min(c.HeaderSize, c.Size)
	if len(b.Part) == 0 {
		switch {
		case b.Specifier == imap.PartSpecifierNone:
			return 0, c.Size, true
		case b.Specifier == imap.PartSpecifierText:
			return hdr, c.Size - hdr, true
		case b.Specifier == imap.PartSpecifierHeader && len(b.HeaderFields) == 0 && len(b.HeaderFieldsNot) == 0:
			return 0, hdr, true
		}
		return 0, 0, false
	}
	// BODY[1] of a message that is not multipart is its body (RFC 9051 §6.4.5).
	if len(b.Part) == 1 && b.Part[0] == 1 && b.Specifier == imap.PartSpecifierNone {
		if sp, single := bs.(*imap.BodyStructureSinglePart); single && !strings.EqualFold(sp.Type, "message") {
			return hdr, c.Size - hdr, true
		}
	}
	return 0, 0, false
}

// partial applies <offset.count> to a section of n bytes.
func partial(p *imap.SectionPartial, n int64) (offset, count int64) {
	if p == nil {
		return 0, n
	}
	offset = min(max(p.Offset, 0), n)
	return offset, min(max(p.Size, 0), n-offset)
}

// extract runs fn on the whole stored message, reporting a read failure that
// the library's extractors would otherwise turn into an empty section.
func (s *session) extract(ctx context.Context, c *models.Content, fn func(io.Reader)) error {
	return s.extractRange(ctx, c, c.Size, fn)
}

func (s *session) extractRange(ctx context.Context, c *models.Content, n int64, fn func(io.Reader)) error {
	er := &errReader{r: s.srv.mbox.OpenRange(ctx, c, 0, n)}
	fn(er)
	if er.err != nil {
		return fmt.Errorf("read message content %d: %w", c.ID, er.err)
	}
	return nil
}

type errReader struct {
	r   io.Reader
	err error
}

func (e *errReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		e.err = err
	}
	return n, err
}

func (s *session) envelope(r *models.FetchRow) *imap.Envelope {
	env, err := message.DecodeEnvelope(r.Content.Envelope)
	if err != nil {
		s.log.Warn("imap fetch: stored envelope unreadable", "uid", r.UID, "err", err)
		return &imap.Envelope{}
	}
	return env
}

func (s *session) bodyStructure(r *models.FetchRow) imap.BodyStructure {
	bs, err := message.DecodeBodyStructure(r.Content.BodyStructure)
	if err != nil {
		s.log.Warn("imap fetch: stored body structure unreadable", "uid", r.UID, "err", err)
		bs = &imap.BodyStructureSinglePart{Type: "text", Subtype: "plain", Params: map[string]string{"charset": "us-ascii"},
			Encoding: "7bit", Size: uint32(r.Size), Text: &imap.BodyStructureText{}}
	}
	completeExtended(bs)
	return bs
}

// completeExtended fills in the extension data BODYSTRUCTURE needs: the
// library panics when asked for it and a part lacks it.
func completeExtended(bs imap.BodyStructure) {
	switch b := bs.(type) {
	case *imap.BodyStructureSinglePart:
		if b.Extended == nil {
			b.Extended = &imap.BodyStructureSinglePartExt{}
		}
		if b.MessageRFC822 != nil && b.MessageRFC822.BodyStructure != nil {
			completeExtended(b.MessageRFC822.BodyStructure)
		}
	case *imap.BodyStructureMultiPart:
		if b.Extended == nil {
			b.Extended = &imap.BodyStructureMultiPartExt{}
		}
		if len(b.Children) == 0 {
			b.Children = []imap.BodyStructure{&imap.BodyStructureSinglePart{Type: "text", Subtype: "plain", Encoding: "7bit",
				Text: &imap.BodyStructureText{}, Extended: &imap.BodyStructureSinglePartExt{}}}
		}
		for _, c := range b.Children {
			completeExtended(c)
		}
	}
}

// errUnknownCTE: a BINARY section whose content transfer encoding this server
// cannot remove. RFC 3516 §4.2 (RFC 9051 §6.4.5): the request fails, NO with
// UNKNOWN-CTE.
var errUnknownCTE = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnknownCTE,
	Text: "Cannot decode the section's Content-Transfer-Encoding"}

// errUndecodable: a BINARY section whose encoding is known but whose data is
// not in it (quoted-printable with a control character: base64 is decoded
// whatever it holds). RFC 9051 §7.1's PARSE: the message's MIME could not be
// parsed.
var errUndecodable = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeParse,
	Text: "The section's data is not valid in its Content-Transfer-Encoding"}

// failBinary answers the errors of BINARY as such, and the others as s.fail does.
func (s *session) failBinary(err error) error {
	var ie *imap.Error
	if errors.As(err, &ie) && (ie == errUnknownCTE || ie == errUndecodable) {
		return ie
	}
	return s.fail("fetch", err)
}

// binarySection is BINARY[part] (RFC 3516 §4.2, RFC 9051 §6.4.5): the
// section's octets as BODY[part] gives them, with the content transfer
// encoding the stored structure names for that part removed, and nothing else
// changed (no charset conversion: go-imap's ExtractBinarySection, through
// go-message, would also convert text to UTF-8). BINARY[] is the header as
// stored and the body decoded. A part the message does not have is empty.
func (s *session) binarySection(ctx context.Context, c *models.Content, bs imap.BodyStructure, part []int) ([]byte, error) {
	target := bodyPart(bs, part)
	if target == nil {
		return nil, nil
	}
	enc := ""
	if sp, ok := target.(*imap.BodyStructureSinglePart); ok {
		enc = strings.ToLower(strings.TrimSpace(sp.Encoding))
	}
	decode, known := cteDecoders[enc]
	if !known {
		return nil, errUnknownCTE
	}
	var head, body []byte
	sec := &imap.FetchItemBodySection{Part: part}
	if len(part) == 0 {
		// The message itself: its header unchanged, then its body decoded.
		sec.Specifier = imap.PartSpecifierText
		if err := s.extractRange(ctx, c, min(c.HeaderSize, c.Size), func(rd io.Reader) {
			head = imapserver.ExtractBodySection(rd, &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader})
		}); err != nil {
			return nil, err
		}
	}
	if err := s.extract(ctx, c, func(rd io.Reader) { body = imapserver.ExtractBodySection(rd, sec) }); err != nil {
		return nil, err
	}
	dec, err := decode(body)
	if err != nil {
		return nil, errUndecodable
	}
	if len(head) > 0 {
		dec = append(head, dec...)
	}
	return dec, nil
}

// bodyPart finds the part a section-part names in a structure (RFC 9051
// §6.4.5): the parts of a multipart are numbered from 1; a message that is
// not multipart has a part 1, its body; the parts of an attached message
// (message/rfc822 or message/global) continue the number of the part that
// holds it. No part (nil) is the message itself. nil: no such part.
func bodyPart(bs imap.BodyStructure, part []int) imap.BodyStructure {
	cur := bs
	for i, n := range part {
		if sp, ok := cur.(*imap.BodyStructureSinglePart); ok && i > 0 {
			// Below the first level only an attached message has parts: those
			// of its body.
			if sp.MessageRFC822 == nil || sp.MessageRFC822.BodyStructure == nil {
				return nil
			}
			cur = sp.MessageRFC822.BodyStructure
		}
		switch b := cur.(type) {
		case *imap.BodyStructureMultiPart:
			if n < 1 || n > len(b.Children) {
				return nil
			}
			cur = b.Children[n-1]
		case *imap.BodyStructureSinglePart:
			if n != 1 {
				return nil
			}
		default:
			return nil
		}
	}
	return cur
}

// cteDecoders remove the content transfer encodings of RFC 2045 §6; "" is a
// multipart's (or a part's with none stated: 7bit).
var cteDecoders = map[string]func([]byte) ([]byte, error){
	"":                 identityCTE,
	"7bit":             identityCTE,
	"8bit":             identityCTE,
	"binary":           identityCTE,
	"base64":           decodeBase64,
	"quoted-printable": decodeQuotedPrintable,
}

func identityCTE(b []byte) ([]byte, error) { return b, nil }

// decodeBase64 decodes as RFC 2045 §6.8 asks: characters outside the base64
// alphabet (line breaks, stray spaces) are ignored, and the first "=" ends the
// data. It never fails: a lone character at the end, which encodes no whole
// octet, is ignored too.
func decodeBase64(b []byte) ([]byte, error) {
	clean := make([]byte, 0, len(b))
	for _, ch := range b {
		switch {
		case ch == '=':
			return decodeBase64Clean(clean)
		case ch >= 'A' && ch <= 'Z', ch >= 'a' && ch <= 'z', ch >= '0' && ch <= '9', ch == '+', ch == '/':
			clean = append(clean, ch)
		}
	}
	return decodeBase64Clean(clean)
}

func decodeBase64Clean(clean []byte) ([]byte, error) {
	if len(clean)%4 == 1 {
		clean = clean[:len(clean)-1]
	}
	out := make([]byte, base64.RawStdEncoding.DecodedLen(len(clean)))
	n, err := base64.RawStdEncoding.Decode(out, clean)
	if err != nil {
		return nil, fmt.Errorf("base64: %w", err)
	}
	return out[:n], nil
}

func decodeQuotedPrintable(b []byte) ([]byte, error) {
	out, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(b)))
	if err != nil {
		return nil, fmt.Errorf("quoted-printable: %w", err)
	}
	return out, nil
}

// The FETCH response items go-imap v2.0.0-beta.8 writes for BINARY are wrong
// in two ways, and the library gives no way to write them otherwise
// (FetchResponseWriter.WriteBinarySection writes the item name and the literal
// itself; its encoder is unexported):
//   - a partial fetch, BINARY[1]<0.7>, is answered "BINARY[1] ~{7}", without
//     the origin octet RFC 3516 §4.3 and RFC 9051 §7.5.2 give it
//     ("BINARY[1]<0> {7}"; go-imap's own open fix is its pull request 663);
//   - the data is always a literal8, where RFC 9051 §7.5.2 says a string
//     SHOULD be used unless it holds NUL.
// BODY sections are right (WriteBodySection writes the origin octet).
// Vendoring the library to change two lines would fork all of it; instead the
// item is rewritten on its way out, at the one seam mailgate owns below the
// library, the connection it writes to (cmdConn.Write calls filterFetchOut).
// fetchOne says beforehand exactly which item line the library is about to
// write and what it must read; the filter follows the response's literals, so
// it only ever rewrites the line of that item, never message data.

// binaryFix is one BINARY item header to rewrite: from is what the library
// writes (it ends the line: "BINARY[1] ~{7}\r\n"), to what is sent instead.
type binaryFix struct{ from, to []byte }

// binaryFixes are the rewrites the BINARY sections of one response need, in
// the order fetchOne writes them.
func binaryFixes(sections []sectionOut) []binaryFix {
	var fixes []binaryFix
	for _, sec := range sections {
		if sec.binary == nil {
			continue
		}
		name := "BINARY[" + partString(sec.binary.Part) + "]"
		n := len(sec.data)
		from := fmt.Sprintf("%s ~{%d}\r\n", name, n)
		to := name
		if p := sec.binary.Partial; p != nil {
			to += fmt.Sprintf("<%d>", p.Offset)
		}
		if bytes.IndexByte(sec.data, 0) >= 0 {
			to += fmt.Sprintf(" ~{%d}\r\n", n)
		} else {
			to += fmt.Sprintf(" {%d}\r\n", n)
		}
		if to != from {
			fixes = append(fixes, binaryFix{from: []byte(from), to: []byte(to)})
		}
	}
	return fixes
}

// partString writes a section-part as go-imap does: numbers joined by dots.
func partString(part []int) string {
	s := make([]string, len(part))
	for i, n := range part {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ".")
}

// fetchFilter rewrites one FETCH response's BINARY items as the library
// writes them out. It holds back the response line being written until its
// end (the library flushes at the end of each response and never waits for
// the client in the middle of one) and passes literal data through untouched.
type fetchFilter struct {
	mu    sync.Mutex
	fixes []binaryFix // still to apply, in order
	lit   int64       // literal octets still to pass through
	line  []byte      // the line held back so far
}

// armBinaryFixes makes the next response written on cc (the one fetchOne is
// about to write) go through a filter applying fixes.
func armBinaryFixes(cc *cmdConn, fixes []binaryFix) {
	if cc != nil {
		cc.fetchFix.Store(&fetchFilter{fixes: fixes})
	}
}

// disarmBinaryFixes ends the filter once the response is written.
func disarmBinaryFixes(cc *cmdConn) {
	if cc != nil {
		cc.fetchFix.Store(nil)
	}
}

// filterFetchOut is what cmdConn.Write sends for p, the library's bytes.
func filterFetchOut(cc *cmdConn, p []byte) []byte {
	if f := cc.fetchFix.Load(); f != nil {
		return f.filter(p)
	}
	return p
}

func (f *fetchFilter) filter(p []byte) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []byte
	for len(p) > 0 {
		if len(f.fixes) == 0 && f.lit == 0 && len(f.line) == 0 {
			return append(out, p...) // nothing left to rewrite
		}
		if f.lit > 0 {
			k := min(f.lit, int64(len(p)))
			out, p, f.lit = append(out, p[:k]...), p[k:], f.lit-k
			continue
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			f.line = append(f.line, p...)
			break
		}
		f.line = append(f.line, p[:i+1]...)
		p = p[i+1:]
		if n, _, ok := literalAt(f.line); ok {
			f.lit = n
		}
		out = append(out, f.rewrite(f.line)...)
		f.line = f.line[:0]
	}
	return out
}

// rewrite applies to a line the fixes whose items it holds, in order. An item
// is whole: what precedes it is the list's "(" or the space between two items.
// A BINARY item ends its line (its literal follows); an ENVELOPE item may be
// followed by others.
func (f *fetchFilter) rewrite(line []byte) []byte {
	var out []byte
	for len(f.fixes) > 0 {
		fx := f.fixes[0]
		i := bytes.Index(line, fx.from)
		if i <= 0 || (line[i-1] != ' ' && line[i-1] != '(') {
			break
		}
		out = append(append(out, line[:i]...), fx.to...)
		line = line[i+len(fx.from):]
		f.fixes = f.fixes[1:]
	}
	if out == nil {
		return line
	}
	return append(out, line...)
}
