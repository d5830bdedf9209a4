package imap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

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
// stored bytes with their exact sizes. Deeper sections, HEADER.FIELDS and
// BINARY go through go-imap's extractors, which hold that one section in
// memory. A body fetch without .PEEK sets \Seen, except in EXAMINE.
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
		if o.BodyStructure != nil || len(o.BodySection) > 0 {
			bs = s.bodyStructure(r)
		}
		var err error
		if sections, err = s.planSections(ctx, r, bs, o); err != nil {
			return s.fail("fetch", err)
		}
		for _, b := range o.BinarySectionSize {
			var n uint32
			if err := s.extract(ctx, r.Content, func(rd io.Reader) { n = imapserver.ExtractBinarySectionSize(rd, b) }); err != nil {
				return s.fail("fetch", err)
			}
			binSizes = append(binSizes, n)
		}
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
		wc = mw.WriteBodySection(sec.body, size)
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
		var data []byte
		if err := s.extract(ctx, c, func(rd io.Reader) { data = imapserver.ExtractBinarySection(rd, b) }); err != nil {
			return nil, err
		}
		out = append(out, sectionOut{binary: b, data: data})
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
