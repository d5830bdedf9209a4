package handlers

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/mailgate/mailgate/models"
)

// specialUses maps the accepted spellings of a special-use attribute (RFC 6154)
// to the stored one.
var specialUses = map[string]string{
	"sent": models.SpecialSent, "drafts": models.SpecialDrafts, "trash": models.SpecialTrash, "junk": models.SpecialJunk,
	"archive": models.SpecialArchive, "all": `\All`, "flagged": `\Flagged`,
}

// ListMailboxes godoc
//
//	@ID			listMailboxes
//	@Summary	List your mailboxes
//	@Description	Every mailbox of the authenticated user, in name order, with its message count, unseen count and size. The same folders IMAP shows.
//	@Tags		mailboxes
//	@Produce	json
//	@Success	200	{object}	MailboxList
//	@Failure	401	{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure	429	{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Security	BearerAuth
//	@Router		/api/v1/mailboxes [get]
func (h *Handlers) ListMailboxes(c *gin.Context) error {
	mbs, err := h.mbox.Mailboxes(ctxOf(c), CurrentUser(c).ID)
	if err != nil {
		return err
	}
	out := MailboxList{Items: make([]Mailbox, 0, len(mbs))}
	for i := range mbs {
		out.Items = append(out.Items, mailboxDTO(&mbs[i]))
	}
	c.JSON(http.StatusOK, out)
	return nil
}

// CreateMailbox godoc
//
//	@ID				createMailbox
//	@Summary		Create a mailbox
//	@Description	Missing parents in the hierarchy ("/" separates levels) are created too.
//	@Tags			mailboxes
//	@Accept			json
//	@Produce		json
//	@Param			body	body		CreateMailboxRequest	true	"The new mailbox"
//	@Success		201		{object}	Mailbox
//	@Failure		400		{object}	ErrorEnvelope	"Invalid name or special_use (named in the message)"
//	@Failure		401		{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure		409		{object}	ErrorEnvelope	"The mailbox exists, or another has this special_use"
//	@Failure		413		{object}	ErrorEnvelope	"Body too large"
//	@Failure		415		{object}	ErrorEnvelope	"Body is not JSON"
//	@Failure		429		{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Security		BearerAuth
//	@Router			/api/v1/mailboxes [post]
func (h *Handlers) CreateMailbox(c *gin.Context) error {
	var req CreateMailboxRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	me := CurrentUser(c)
	if strings.TrimSpace(req.Name) == "" {
		return required("name")
	}
	if err := models.ValidateMailboxName(req.Name); err != nil {
		return err
	}
	use := ""
	if req.SpecialUse != "" {
		var ok bool
		if use, ok = specialUses[strings.ToLower(strings.TrimPrefix(req.SpecialUse, `\`))]; !ok {
			return models.Invalid("special_use", "must be one of Sent, Drafts, Trash, Junk, Archive, All, Flagged")
		}
		if other, err := h.mbox.BySpecialUse(ctxOf(c), me.ID, use); err == nil {
			return &models.ConflictError{Reason: "your mailbox " + other.Name + " already has the special use " + use}
		} else if !errors.Is(err, models.ErrNotFound) {
			return err
		}
	}
	mb, err := h.mbox.CreateSubscribed(ctxOf(c), me.ID, req.Name, use)
	if err != nil {
		return err
	}
	c.Header("Location", "/api/v1/mailboxes/"+mb.PublicID)
	c.JSON(http.StatusCreated, mailboxDTO(mb))
	return nil
}

// mailboxParam loads the user's mailbox named by the path's id.
func (h *Handlers) mailboxParam(c *gin.Context) (*models.Mailbox, error) {
	return h.mbox.GetByPublicID(ctxOf(c), CurrentUser(c).ID, c.Param("id"))
}

// UpdateMailbox godoc
//
//	@ID				updateMailbox
//	@Summary		Rename or (un)subscribe a mailbox
//	@Description	Renaming keeps the mailbox's id, messages and UIDs; its children move with it. INBOX cannot be renamed.
//	@Tags			mailboxes
//	@Accept			json
//	@Produce		json
//	@Param			id		path		string					true	"Mailbox id"	format(uuid)
//	@Param			body	body		UpdateMailboxRequest	true	"Fields to change"
//	@Success		200		{object}	Mailbox
//	@Failure		400		{object}	ErrorEnvelope	"Invalid name (named in the message)"
//	@Failure		401		{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure		403		{object}	ErrorEnvelope	"INBOX cannot be renamed"
//	@Failure		404		{object}	ErrorEnvelope	"No such mailbox"
//	@Failure		409		{object}	ErrorEnvelope	"A mailbox with the new name exists"
//	@Failure		413		{object}	ErrorEnvelope	"Body too large"
//	@Failure		415		{object}	ErrorEnvelope	"Body is not JSON"
//	@Failure		429		{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Security		BearerAuth
//	@Router			/api/v1/mailboxes/{id} [patch]
func (h *Handlers) UpdateMailbox(c *gin.Context) error {
	var req UpdateMailboxRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	mb, err := h.mailboxParam(c)
	if err != nil {
		return err
	}
	me := CurrentUser(c)
	if req.Name != nil && models.CanonicalMailboxName(*req.Name) != mb.Name {
		if mb.Name == models.Inbox {
			return &HTTPError{Status: http.StatusForbidden, Code: CodeForbidden, Field: "name",
				Message: "name: INBOX cannot be renamed (mail arrives there); move its messages instead"}
		}
		if err := models.ValidateMailboxName(*req.Name); err != nil {
			return err
		}
		if err := h.mbox.RenameWithSubscriptions(ctxOf(c), me.ID, mb.Name, *req.Name); err != nil {
			return err
		}
	}
	if req.Subscribed != nil {
		if mb, err = h.mbox.GetByID(ctxOf(c), mb.ID); err != nil {
			return err
		}
		if err := h.mbox.SetSubscribed(ctxOf(c), me.ID, mb.Name, *req.Subscribed); err != nil {
			return err
		}
	}
	if mb, err = h.mbox.GetByID(ctxOf(c), mb.ID); err != nil {
		return err
	}
	c.JSON(http.StatusOK, mailboxDTO(mb))
	return nil
}

// DeleteMailbox godoc
//
//	@ID				deleteMailbox
//	@Summary		Delete a mailbox
//	@Description	Deletes the mailbox and the messages in it, for good. Mailboxes below it in the hierarchy stay. INBOX cannot be deleted.
//	@Tags			mailboxes
//	@Param			id	path	string	true	"Mailbox id"	format(uuid)
//	@Success		204
//	@Failure		401	{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure		403	{object}	ErrorEnvelope	"INBOX cannot be deleted"
//	@Failure		404	{object}	ErrorEnvelope	"No such mailbox"
//	@Failure		429	{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Security		BearerAuth
//	@Router			/api/v1/mailboxes/{id} [delete]
func (h *Handlers) DeleteMailbox(c *gin.Context) error {
	mb, err := h.mailboxParam(c)
	if err != nil {
		return err
	}
	if mb.Name == models.Inbox {
		return Errorf(http.StatusForbidden, CodeForbidden, "INBOX cannot be deleted: mail arrives there")
	}
	if err := h.mbox.Delete(ctxOf(c), CurrentUser(c).ID, mb.Name); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}
