package handlers

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/message"
)

// ListMessages godoc
//
//	@ID				listMessages
//	@Summary		List and search messages
//	@Description	Messages of one of your mailboxes, newest first (by arrival), one page at a time. Pages follow a key, not an offset: mail that arrives or goes between pages neither repeats nor hides others. Filters combine with AND. q is full-text over subject, addresses and text bodies (whatever charset the message used); every word must occur. Words of scripts written without spaces (Chinese, Japanese, Korean, Thai) match anywhere in the text.
//	@Tags			messages
//	@Produce		json
//	@Param			mailbox			query		string	false	"Mailbox name or id"	default(INBOX)
//	@Param			unseen			query		bool	false	"true: only messages without \\Seen; false: only seen ones"
//	@Param			flagged			query		bool	false	"true: only flagged messages; false: only unflagged ones"
//	@Param			has_attachments	query		bool	false	"true: only messages with attachments; false: only without"
//	@Param			from			query		string	false	"Part of the From field (name or address), any case"
//	@Param			to				query		string	false	"Part of the To field (name or address), any case"
//	@Param			subject			query		string	false	"Part of the subject, any case"
//	@Param			since			query		string	false	"Arrived at or after: a date (2024-05-01, midnight UTC) or an RFC 3339 date-time"
//	@Param			before			query		string	false	"Arrived before: a date or an RFC 3339 date-time"
//	@Param			q				query		string	false	"Full-text search words"
//	@Param			limit			query		int		false	"Page size (1-200)"	minimum(1)	maximum(200)	default(50)
//	@Param			cursor			query		string	false	"next_cursor of the previous page (with the same filters)"
//	@Success		200				{object}	MessagePage
//	@Failure		400				{object}	ErrorEnvelope	"Bad filter, limit or cursor, or no such mailbox (the parameter is named)"
//	@Failure		401				{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure		429				{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Security		BearerAuth
//	@Router			/api/v1/messages [get]
func (h *Handlers) ListMessages(c *gin.Context) error {
	me := CurrentUser(c)
	mb, err := h.mailboxByRef(c, c.DefaultQuery("mailbox", models.Inbox), "mailbox")
	if err != nil {
		return err
	}
	f := models.MessageFilter{MailboxID: mb.ID, From: c.Query("from"), To: c.Query("to"), Subject: c.Query("subject"),
		Query: strings.TrimSpace(c.Query("q"))}
	if f.Seen, err = boolQuery(c, "unseen"); err != nil {
		return err
	}
	if f.Seen != nil {
		seen := !*f.Seen
		f.Seen = &seen
	}
	if f.Flagged, err = boolQuery(c, "flagged"); err != nil {
		return err
	}
	if f.HasAttachments, err = boolQuery(c, "has_attachments"); err != nil {
		return err
	}
	if f.Since, err = dateQuery(c, "since"); err != nil {
		return err
	}
	if f.Before, err = dateQuery(c, "before"); err != nil {
		return err
	}
	// The cursor is bound to the user, the mailbox and the filters it was made for.
	q := c.Request.URL.Query()
	q.Del("cursor")
	q.Del("limit")
	for k, v := range q {
		if len(v) == 1 && v[0] == "" {
			q.Del(k)
		}
	}
	q.Set("mailbox", mb.PublicID)
	scope := fmt.Sprintf("messages:%d:%s", me.ID, q.Encode())
	p, err := h.pageParams(c, scope)
	if err != nil {
		return err
	}
	var after *models.ListKey
	if p.After != "" {
		k, err := models.ParseListKey(p.After)
		if err != nil {
			return err
		}
		after = &k
	}
	ms, next, err := h.mbox.List(ctxOf(c), f, after, p.Limit)
	if err != nil {
		return err
	}
	page := MessagePage{Items: make([]MessageSummary, 0, len(ms))}
	for i := range ms {
		page.Items = append(page.Items, summaryDTO(&ms[i], mb))
	}
	if next != nil {
		page.NextCursor = h.nextCursor(scope, next.String())
	}
	c.JSON(http.StatusOK, page)
	return nil
}

// mailboxByRef finds the user's mailbox by id or name; an unknown one is invalid
// input in field.
func (h *Handlers) mailboxByRef(c *gin.Context, ref, field string) (*models.Mailbox, error) {
	me := CurrentUser(c)
	if models.ValidID(ref) {
		mb, err := h.mbox.GetByPublicID(ctxOf(c), me.ID, ref)
		if err == nil || !errors.Is(err, models.ErrNotFound) {
			return mb, err
		}
	}
	mb, err := h.mbox.Get(ctxOf(c), me.ID, ref)
	if errors.Is(err, models.ErrNotFound) {
		return nil, models.Invalid(field, fmt.Sprintf("you have no mailbox %q", ref))
	}
	return mb, err
}

func boolQuery(c *gin.Context, name string) (*bool, error) {
	v, ok := c.GetQuery(name)
	if !ok || v == "" {
		return nil, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return nil, models.Invalid(name, "must be true or false")
	}
	return &b, nil
}

func dateQuery(c *gin.Context, name string) (*time.Time, error) {
	v := c.Query(name)
	if v == "" {
		return nil, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			t = t.UTC()
			return &t, nil
		}
	}
	return nil, models.Invalid(name, "must be a date (2024-05-01) or an RFC 3339 date-time (2024-05-01T08:00:00Z)")
}

// messageParam loads the user's message named by the path's id. Another user's
// message is not found, exactly like one that does not exist.
func (h *Handlers) messageParam(c *gin.Context) (*models.Message, *models.Mailbox, error) {
	m, err := h.mbox.Message(ctxOf(c), CurrentUser(c).ID, c.Param("id"))
	if err != nil {
		return nil, nil, err
	}
	mb, err := h.mbox.GetByID(ctxOf(c), m.MailboxID)
	if err != nil {
		return nil, nil, err
	}
	return m, mb, nil
}

// GetMessage godoc
//
//	@ID				getMessage
//	@Summary		Read a message
//	@Description	The message decoded for display: header fields, addresses, the text and HTML bodies in UTF-8 whatever charset they were sent in, the HTML made safe to show, and the list of attachments. Reading does not mark the message seen: PATCH seen=true does.
//	@Tags			messages
//	@Produce		json
//	@Param			id	path		string	true	"Message id"	format(uuid)
//	@Success		200	{object}	MessageDetail
//	@Failure		401	{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure		404	{object}	ErrorEnvelope	"No such message"
//	@Failure		429	{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Security		BearerAuth
//	@Router			/api/v1/messages/{id} [get]
func (h *Handlers) GetMessage(c *gin.Context) error {
	m, mb, err := h.messageParam(c)
	if err != nil {
		return err
	}
	r, err := h.mbox.OpenMessage(ctxOf(c), m)
	if err != nil {
		return err
	}
	d, err := message.Decode(r)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, detailDTO(m, mb, d))
	return nil
}

// GetMessageRaw godoc
//
//	@ID				getMessageRaw
//	@Summary		Download a message as stored
//	@Description	The message's bytes exactly as stored (RFC 5322, CRLF line ends), as message/rfc822.
//	@Tags			messages
//	@Produce		message/rfc822
//	@Produce		json
//	@Param			id	path		string	true	"Message id"	format(uuid)
//	@Success		200	{file}		file
//	@Failure		401	{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure		404	{object}	ErrorEnvelope	"No such message"
//	@Failure		429	{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Security		BearerAuth
//	@Router			/api/v1/messages/{id}/raw [get]
func (h *Handlers) GetMessageRaw(c *gin.Context) error {
	m, _, err := h.messageParam(c)
	if err != nil {
		return err
	}
	r, err := h.mbox.OpenMessage(ctxOf(c), m)
	if err != nil {
		return err
	}
	hd := c.Writer.Header()
	hd.Set("Content-Type", "message/rfc822")
	hd.Set("Content-Length", strconv.FormatInt(m.Size, 10))
	hd.Set("Content-Disposition", contentDisposition("attachment", m.PublicID+".eml"))
	hd.Set("X-Content-Type-Options", "nosniff")
	c.Status(http.StatusOK)
	return streamed(c, r)
}

// streamed copies a body whose status and headers are sent. A failure now can
// only cut the response short.
func streamed(c *gin.Context, r io.Reader) error {
	if _, err := io.Copy(c.Writer, r); err != nil {
		abortResponse(c, err)
	}
	return nil
}

// abortResponse drops the connection of a response already under way, so that
// the client sees it fail rather than take a cut body for a whole one. (The
// usual panic(http.ErrAbortHandler) does not get past gin's recovery, which
// ends the response cleanly.)
func abortResponse(c *gin.Context, err error) {
	c.Error(err) //nolint:errcheck // recorded for the access log
	c.Abort()
	// gin's writer refuses to hijack once a body is under way: go below it.
	var w http.ResponseWriter = c.Writer
	if u, ok := w.(interface{ Unwrap() http.ResponseWriter }); ok {
		w = u.Unwrap()
	}
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		conn.Close()
	}
}

// GetAttachment godoc
//
//	@ID				getAttachment
//	@Summary		Download an attachment
//	@Description	The attachment's content, decoded (no base64), with its media type and its file name in Content-Disposition (RFC 6266, filename* for names that are not ASCII). Always served as an attachment, never rendered inline.
//	@Tags			messages
//	@Produce		*/*
//	@Produce		json
//	@Param			id		path		string	true	"Message id"					format(uuid)
//	@Param			index	path		int		true	"index from the message's attachments"	minimum(0)
//	@Success		200		{file}		file	"The content, with the attachment's own Content-Type"
//	@Failure		400		{object}	ErrorEnvelope	"index is not a number"
//	@Failure		401		{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure		404		{object}	ErrorEnvelope	"No such message, or no attachment with this index"
//	@Failure		429		{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Security		BearerAuth
//	@Router			/api/v1/messages/{id}/attachments/{index} [get]
func (h *Handlers) GetAttachment(c *gin.Context) error {
	idx, err := strconv.Atoi(c.Param("index"))
	if err != nil || idx < 0 {
		return models.Invalid("index", "must be a whole number from 0 (the index in the message's attachments)")
	}
	m, _, err := h.messageParam(c)
	if err != nil {
		return err
	}
	r, err := h.mbox.OpenMessage(ctxOf(c), m)
	if err != nil {
		return err
	}
	started := false
	err = message.StreamAttachment(r, idx, func(a *message.AttachmentInfo) (io.Writer, error) {
		name := a.Filename
		if name == "" {
			name = fmt.Sprintf("attachment-%d%s", a.Index, extensionOf(a.ContentType))
		}
		hd := c.Writer.Header()
		hd.Set("Content-Type", a.ContentType)
		hd.Set("Content-Disposition", contentDisposition("attachment", name))
		hd.Set("X-Content-Type-Options", "nosniff")
		// Whatever the part is (HTML, SVG), it must never run as this origin.
		hd.Set("Content-Security-Policy", "default-src 'none'; sandbox")
		c.Status(http.StatusOK)
		started = true
		return c.Writer, nil
	})
	if err != nil && started {
		abortResponse(c, err)
		return nil
	}
	return err
}

func extensionOf(contentType string) string {
	mt, _, _ := strings.Cut(contentType, ";")
	if exts, err := mime.ExtensionsByType(mt); err == nil && len(exts) > 0 {
		return exts[0]
	}
	return ".bin"
}

// contentDisposition renders a Content-Disposition for HTTP (RFC 6266): an ASCII
// filename for old clients and, when the name is not plain ASCII, filename* in
// UTF-8 (RFC 8187) for everyone else.
func contentDisposition(kind, name string) string {
	var ascii, ext strings.Builder
	plain := true
	for _, r := range name {
		switch {
		case r >= 0x20 && r < 0x7f && r != '"' && r != '\\':
			ascii.WriteRune(r)
		default:
			ascii.WriteByte('_')
			plain = false
		}
	}
	v := kind + `; filename="` + ascii.String() + `"`
	if plain {
		return v
	}
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(name); i++ {
		b := name[i]
		if b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || strings.IndexByte("!#$&+-.^_`|~", b) >= 0 {
			ext.WriteByte(b)
			continue
		}
		ext.WriteByte('%')
		ext.WriteByte(hex[b>>4])
		ext.WriteByte(hex[b&15])
	}
	return v + "; filename*=UTF-8''" + ext.String()
}

// UpdateMessage godoc
//
//	@ID				updateMessage
//	@Summary		Flag or move a message
//	@Description	Sets or clears \Seen, \Flagged and \Answered, and moves the message to another of your mailboxes (it keeps its id). IMAP clients see the change at once.
//	@Tags			messages
//	@Accept			json
//	@Produce		json
//	@Param			id		path		string					true	"Message id"	format(uuid)
//	@Param			body	body		UpdateMessageRequest	true	"What to change"
//	@Success		200		{object}	MessageSummary
//	@Failure		400		{object}	ErrorEnvelope	"Invalid field, or no such mailbox (named in the message)"
//	@Failure		401		{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure		404		{object}	ErrorEnvelope	"No such message"
//	@Failure		413		{object}	ErrorEnvelope	"Body too large"
//	@Failure		415		{object}	ErrorEnvelope	"Body is not JSON"
//	@Failure		429		{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Security		BearerAuth
//	@Router			/api/v1/messages/{id} [patch]
func (h *Handlers) UpdateMessage(c *gin.Context) error {
	var req UpdateMessageRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	m, _, err := h.messageParam(c)
	if err != nil {
		return err
	}
	var dest *models.Mailbox
	if req.Mailbox != nil {
		// Checked before anything changes, so a bad mailbox changes nothing.
		if dest, err = h.mailboxByRef(c, *req.Mailbox, "mailbox"); err != nil {
			return err
		}
	}
	var add, remove models.Flags
	for _, f := range []struct {
		want        *bool
		add, remove *bool
	}{{req.Seen, &add.Seen, &remove.Seen}, {req.Flagged, &add.Flagged, &remove.Flagged}, {req.Answered, &add.Answered, &remove.Answered}} {
		if f.want != nil {
			*f.add, *f.remove = *f.want, !*f.want
		}
	}
	for _, op := range []struct {
		op    models.FlagOp
		flags models.Flags
	}{{models.FlagsAdd, add}, {models.FlagsRemove, remove}} {
		if op.flags.Equal(models.Flags{}) {
			continue
		}
		if _, err := h.mbox.SetFlags(ctxOf(c), m.MailboxID, models.UIDs(m.UID), op.op, op.flags); err != nil {
			return err
		}
	}
	if dest != nil && dest.ID != m.MailboxID {
		if m, _, err = h.messageParam(c); err != nil {
			return err
		}
		if _, err = h.mbox.MoveMessage(ctxOf(c), m, dest.ID); err != nil {
			return err
		}
	}
	return h.replySummary(c)
}

func (h *Handlers) replySummary(c *gin.Context) error {
	m, mb, err := h.messageParam(c)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, summaryDTO(m, mb))
	return nil
}

// DeleteMessage godoc
//
//	@ID				deleteMessage
//	@Summary		Delete a message for good
//	@Description	Expunges the message at once (IMAP clients see EXPUNGE). To keep it recoverable, use POST /api/v1/messages/{id}/trash instead.
//	@Tags			messages
//	@Param			id	path	string	true	"Message id"	format(uuid)
//	@Success		204
//	@Failure		401	{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure		404	{object}	ErrorEnvelope	"No such message"
//	@Failure		429	{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Security		BearerAuth
//	@Router			/api/v1/messages/{id} [delete]
func (h *Handlers) DeleteMessage(c *gin.Context) error {
	m, _, err := h.messageParam(c)
	if err != nil {
		return err
	}
	gone, err := h.mbox.Expunge(ctxOf(c), m.MailboxID, models.UIDs(m.UID), false)
	if err != nil {
		return err
	}
	if len(gone) == 0 {
		return &models.NotFoundError{What: "message " + m.PublicID} // expunged meanwhile
	}
	c.Status(http.StatusNoContent)
	return nil
}

// TrashMessage godoc
//
//	@ID				trashMessage
//	@Summary		Move a message to the trash
//	@Description	Moves the message to your \Trash mailbox (creating "Trash" if you have none); it keeps its id. A message already there stays.
//	@Tags			messages
//	@Produce		json
//	@Param			id	path		string	true	"Message id"	format(uuid)
//	@Success		200	{object}	MessageSummary
//	@Failure		401	{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure		404	{object}	ErrorEnvelope	"No such message"
//	@Failure		409	{object}	ErrorEnvelope	"No \\Trash mailbox, and the name Trash is taken"
//	@Failure		429	{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Security		BearerAuth
//	@Router			/api/v1/messages/{id}/trash [post]
func (h *Handlers) TrashMessage(c *gin.Context) error {
	m, _, err := h.messageParam(c)
	if err != nil {
		return err
	}
	me := CurrentUser(c)
	trash, err := h.mbox.BySpecialUse(ctxOf(c), me.ID, models.SpecialTrash)
	if errors.Is(err, models.ErrNotFound) {
		trash, err = h.mbox.Create(ctxOf(c), me.ID, "Trash", models.SpecialTrash)
		if errors.Is(err, models.ErrConflict) {
			return &models.ConflictError{Reason: `you have no \Trash mailbox and "Trash" is taken: create one with special_use Trash`}
		}
	}
	if err != nil {
		return err
	}
	if trash.ID != m.MailboxID {
		if _, err := h.mbox.MoveMessage(ctxOf(c), m, trash.ID); err != nil {
			return err
		}
	}
	return h.replySummary(c)
}
