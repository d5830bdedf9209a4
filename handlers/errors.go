package handlers

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/auth"
	"github.com/mailgate/mailgate/protocol/delivery"
	"github.com/mailgate/mailgate/protocol/message"
)

// Error codes of the envelope.
const (
	CodeInvalid      = "invalid_request"
	CodeUnauthorized = "unauthorized"
	CodeForbidden    = "forbidden"
	CodeNotFound     = "not_found"
	CodeConflict     = "conflict"
	CodeTooLarge     = "payload_too_large"
	CodeRateLimited  = "rate_limited"
	CodeUnavailable  = "unavailable"
	CodeInternal     = "internal_error"
	CodeUnsupported  = "unsupported_media_type"
	// CodeNoRecipients: no recipient of a message can receive it (422).
	CodeNoRecipients = "no_valid_recipients"
	// CodeIdempotencyMismatch: an Idempotency-Key sent again with a different request (422).
	CodeIdempotencyMismatch = "idempotency_key_reused"
	CodeOverQuota           = "over_quota"
	// CodeQuotaExceeded: the sender's copy in Sent would put it over its quota,
	// so nothing was sent (422).
	CodeQuotaExceeded = "quota_exceeded"
)

// ErrorBody says what went wrong.
type ErrorBody struct {
	// Machine-readable code: invalid_request, unauthorized, forbidden, not_found, conflict,
	// payload_too_large, unsupported_media_type, no_valid_recipients, idempotency_key_reused,
	// over_quota, quota_exceeded, rate_limited, unavailable, internal_error.
	Code string `json:"code" example:"invalid_request" binding:"required"`
	// Human-readable explanation; for invalid input it names the field.
	Message string `json:"message" example:"email: address \"x\" must be local@domain" binding:"required"`
	// The offending field, for invalid input.
	Field string `json:"field,omitempty" example:"email"`
} //@name ErrorBody

// ErrorEnvelope is the body of every error response.
type ErrorEnvelope struct {
	Error ErrorBody `json:"error" binding:"required"`
} //@name ErrorEnvelope

// HTTPError is an error with its own status and code (for errors that do not come
// from the store: a bad token, a body too large, an unsupported media type).
type HTTPError struct {
	Status  int
	Code    string
	Message string
	Field   string
}

func (e *HTTPError) Error() string { return e.Message }

// fieldError blames err on one field of the request: the envelope names it, and
// its message starts with it.
type fieldError struct {
	field string
	err   error
}

func (e *fieldError) Error() string { return e.field + ": " + e.err.Error() }
func (e *fieldError) Unwrap() error { return e.err }

// onField blames err on field (nil stays nil).
func onField(field string, err error) error {
	if err == nil {
		return nil
	}
	return &fieldError{field: field, err: err}
}

// Errorf makes an HTTPError.
func Errorf(status int, code, msg string) *HTTPError {
	return &HTTPError{Status: status, Code: code, Message: msg}
}

// status is the one table from errors to HTTP status, code and client text.
// Unknown errors are 500 with a generic text; their detail goes to the log only.
func status(err error) (int, ErrorBody) {
	var he *HTTPError
	var fe *models.FieldError
	var ce *models.ConflictError
	var nf *models.NotFoundError
	var fw *fieldError
	if errors.As(err, &fw) {
		st, body := status(fw.err)
		if st < 500 {
			body.Field = fw.field
			body.Message = fw.field + ": " + strings.TrimPrefix(body.Message, fw.field+": ")
		}
		return st, body
	}
	switch {
	case errors.As(err, &he):
		return he.Status, ErrorBody{Code: he.Code, Message: he.Message, Field: he.Field}
	case errors.As(err, &fe):
		return http.StatusBadRequest, ErrorBody{Code: CodeInvalid, Message: fe.Error(), Field: fe.Field}
	case errors.Is(err, auth.ErrThrottled):
		return http.StatusTooManyRequests, ErrorBody{Code: CodeRateLimited, Message: "too many failed logins; try again later (see Retry-After)"}
	case errors.Is(err, auth.ErrFailed):
		return http.StatusUnauthorized, ErrorBody{Code: CodeUnauthorized, Message: "invalid email or password"}
	case errors.Is(err, auth.ErrBadToken):
		return http.StatusUnauthorized, ErrorBody{Code: CodeUnauthorized, Message: "invalid or expired token"}
	case errors.As(err, &ce):
		return http.StatusConflict, ErrorBody{Code: CodeConflict, Message: ce.Reason}
	case errors.Is(err, models.ErrConflict):
		return http.StatusConflict, ErrorBody{Code: CodeConflict, Message: "conflicts with the current state"}
	case errors.As(err, &nf):
		return http.StatusNotFound, ErrorBody{Code: CodeNotFound, Message: nf.Error()}
	case errors.Is(err, models.ErrNotFound):
		return http.StatusNotFound, ErrorBody{Code: CodeNotFound, Message: "not found"}
	case errors.Is(err, models.ErrForbidden):
		return http.StatusForbidden, ErrorBody{Code: CodeForbidden, Message: "not allowed"}
	case errors.Is(err, models.ErrTooExpensive):
		return http.StatusBadRequest, ErrorBody{Code: CodeInvalid, Message: "q: the search is too expensive (too many words, or too slow): narrow it", Field: "q"}
	case errors.Is(err, models.ErrInvalid):
		return http.StatusBadRequest, ErrorBody{Code: CodeInvalid, Message: "invalid request"}
	case errors.Is(err, delivery.ErrSenderOverQuota):
		return http.StatusUnprocessableEntity, ErrorBody{Code: CodeQuotaExceeded,
			Message: "your Sent copy would put you over your quota; nothing was sent: make room first"}
	case errors.Is(err, models.ErrQuota):
		return http.StatusInsufficientStorage, ErrorBody{Code: CodeOverQuota, Message: "mailbox over quota"}
	case errors.Is(err, delivery.ErrSenderDenied):
		return http.StatusForbidden, ErrorBody{Code: CodeForbidden, Message: "you may send only as yourself or as a group you belong to"}
	case errors.Is(err, delivery.ErrBadAddress):
		return http.StatusBadRequest, ErrorBody{Code: CodeInvalid, Message: "invalid address"}
	case errors.Is(err, message.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, ErrorBody{Code: CodeTooLarge, Message: "the message would be larger than this server accepts"}
	case errors.Is(err, models.ErrIdempotencyMismatch):
		return http.StatusUnprocessableEntity, ErrorBody{Code: CodeIdempotencyMismatch,
			Message: "this Idempotency-Key was already used with a different request; use a new key for a new message"}
	case errors.Is(err, message.ErrNoAttachment):
		return http.StatusNotFound, ErrorBody{Code: CodeNotFound, Message: "the message has no attachment with this index"}
	case errors.Is(err, models.ErrTemporary), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, ErrorBody{Code: CodeUnavailable, Message: "temporarily unavailable, try again"}
	}
	return http.StatusInternalServerError, ErrorBody{Code: CodeInternal, Message: "internal server error"}
}

// WriteError sends err as the error envelope. The error itself, with the detail
// the client does not see, is attached to the request for the access log.
func WriteError(c *gin.Context, err error) {
	st, body := status(err)
	if st >= 500 {
		c.Error(err) //nolint:errcheck // recorded for the access log
	}
	if st == http.StatusUnauthorized {
		c.Header("WWW-Authenticate", `Bearer realm="mailgate"`)
	}
	c.Abort()
	c.PureJSON(st, ErrorEnvelope{Error: body})
}

// H adapts a handler that returns an error.
func H(fn func(*gin.Context) error) gin.HandlerFunc {
	return func(c *gin.Context) {
		if err := fn(c); err != nil {
			WriteError(c, err)
		}
	}
}
