package handlers

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mailgate/mailgate/models"
)

// QueueEntry is a message waiting to go to one remote recipient.
type QueueEntry struct {
	ID        string `json:"id" format:"uuid" example:"3f1c2a9e-6b1d-4c55-9f5e-2b7d8e0a1c44" binding:"required"`
	Sender    string `json:"sender" example:"alice@example.com" binding:"required"` // "" for bounces
	Recipient string `json:"recipient" format:"email" example:"bob@example.org" binding:"required"`
	Domain    string `json:"domain" example:"example.org" binding:"required"`
	// queued: waiting for its first attempt; deferred: an attempt failed and it will be
	// retried; sending: an instance is delivering it now.
	Status        string    `json:"status" enums:"queued,deferred,sending" binding:"required"`
	Attempts      int       `json:"attempts" example:"2" binding:"required"`
	NextAttemptAt time.Time `json:"next_attempt_at" format:"date-time" binding:"required"`
	ExpiresAt     time.Time `json:"expires_at" format:"date-time" binding:"required"`
	LastError     string    `json:"last_error" example:"451 4.7.1 greylisted, try again later" binding:"required"`
	CreatedAt     time.Time `json:"created_at" format:"date-time" binding:"required"`
} //@name QueueEntry

// QueuePage is one page of the outbound queue.
type QueuePage struct {
	Items      []QueueEntry `json:"items" binding:"required"`
	NextCursor string       `json:"next_cursor" binding:"required"`
} //@name QueuePage

func queueDTO(e *models.QueueEntry, now time.Time) QueueEntry {
	status := e.Status
	if status == models.QueueSending && (e.LeaseUntil == nil || !e.LeaseUntil.After(now)) {
		status = models.QueueDeferred // the instance that held it went away; it will be retried
	}
	return QueueEntry{ID: e.PublicID, Sender: e.Sender, Recipient: e.Recipient, Domain: e.Domain, Status: status,
		Attempts: e.Attempts, NextAttemptAt: e.NextAttemptAt.UTC(), ExpiresAt: e.ExpiresAt.UTC(), LastError: e.LastError,
		CreatedAt: e.CreatedAt.UTC()}
}

// ListQueue godoc
//
//	@ID			listQueue
//	@Summary	List the outbound queue
//	@Tags		queue
//	@Produce	json
//	@Param		limit	query		int		false	"Page size (1-200)"	minimum(1)	maximum(200)	default(50)
//	@Param		cursor	query		string	false	"next_cursor of the previous page"
//	@Success	200		{object}	QueuePage
//	@Failure	400		{object}	ErrorEnvelope	"Bad limit or cursor"
//	@Failure	401		{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure	403		{object}	ErrorEnvelope	"Not an admin"
//	@Failure	429		{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Security	BearerAuth
//	@Router		/api/v1/queue [get]
func (h *Handlers) ListQueue(c *gin.Context) error {
	p, err := h.pageParams(c, "queue")
	if err != nil {
		return err
	}
	es, next, err := h.store.ListQueue(ctxOf(c), p)
	if err != nil {
		return err
	}
	now := time.Now()
	page := QueuePage{Items: make([]QueueEntry, 0, len(es)), NextCursor: h.nextCursor("queue", next)}
	for i := range es {
		page.Items = append(page.Items, queueDTO(&es[i], now))
	}
	c.JSON(http.StatusOK, page)
	return nil
}

// RetryQueueEntry godoc
//
//	@ID				retryQueueEntry
//	@Summary		Retry a queued message now
//	@Description	Makes the entry due at once and wakes the queue workers of every instance.
//	@Tags			queue
//	@Produce		json
//	@Param			id	path		string	true	"Queue entry id"	format(uuid)
//	@Success		200	{object}	QueueEntry
//	@Failure		401	{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure		403	{object}	ErrorEnvelope	"Not an admin"
//	@Failure		404	{object}	ErrorEnvelope	"No such entry"
//	@Failure		409	{object}	ErrorEnvelope	"Being delivered right now"
//	@Failure		429	{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Security		BearerAuth
//	@Router			/api/v1/queue/{id}/retry [post]
func (h *Handlers) RetryQueueEntry(c *gin.Context) error {
	if err := h.store.RetryQueue(ctxOf(c), c.Param("id")); err != nil {
		return err
	}
	e, err := h.store.GetQueueEntry(ctxOf(c), c.Param("id"))
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, queueDTO(e, time.Now()))
	return nil
}

// DeleteQueueEntry godoc
//
//	@ID				deleteQueueEntry
//	@Summary		Drop a queued message
//	@Description	Removes the entry without a bounce. An attempt already under way may still deliver it.
//	@Tags			queue
//	@Param			id	path	string	true	"Queue entry id"	format(uuid)
//	@Success		204
//	@Failure		401	{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure		403	{object}	ErrorEnvelope	"Not an admin"
//	@Failure		404	{object}	ErrorEnvelope	"No such entry"
//	@Failure		429	{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Security		BearerAuth
//	@Router			/api/v1/queue/{id} [delete]
func (h *Handlers) DeleteQueueEntry(c *gin.Context) error {
	if err := h.store.DeleteQueue(ctxOf(c), c.Param("id")); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}
