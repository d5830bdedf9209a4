package models

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
)

// The error vocabulary shared by every layer. Front ends map these categories to
// their own replies (HTTP status, SMTP code, IMAP response code, POP3 -ERR).
var (
	ErrNotFound  = errors.New("not found")
	ErrConflict  = errors.New("conflict")
	ErrInvalid   = errors.New("invalid")
	ErrForbidden = errors.New("forbidden")
	ErrQuota     = errors.New("quota exceeded")
	// ErrTemporary is a failure that may go away if the caller tries again later
	// (a serialization failure, a busy database, a lost connection).
	ErrTemporary = errors.New("temporary failure")
	// ErrTooExpensive is a search over the bounds of SearchLimits: too many
	// terms, too much text, or more than its time.
	ErrTooExpensive = errors.New("search too expensive")
)

// FieldError is invalid input in one named field.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }
func (e *FieldError) Unwrap() error { return ErrInvalid }

// Invalid returns a FieldError.
func Invalid(field, reason string) error { return &FieldError{Field: field, Reason: reason} }

// ConflictError names what already exists or still depends on something.
type ConflictError struct{ Reason string }

func (e *ConflictError) Error() string { return e.Reason }
func (e *ConflictError) Unwrap() error { return ErrConflict }

// NotFoundError names what was looked for.
type NotFoundError struct{ What string }

func (e *NotFoundError) Error() string { return e.What + " not found" }
func (e *NotFoundError) Unwrap() error { return ErrNotFound }

func notFound(what string) error { return &NotFoundError{What: what} }

// translate turns driver errors of either dialect into the vocabulary.
func translate(err error) error {
	if err == nil {
		return nil
	}
	var pg *pgconn.PgError
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		return fmt.Errorf("%w: %v", ErrNotFound, err)
	case errors.Is(err, gorm.ErrDuplicatedKey):
		return fmt.Errorf("%w: %v", ErrConflict, err)
	case errors.Is(err, gorm.ErrForeignKeyViolated):
		return fmt.Errorf("%w: %v", ErrConflict, err)
	case errors.As(err, &pg):
		switch pg.Code {
		case "23505", "23503":
			return fmt.Errorf("%w: %v", ErrConflict, err)
		case "23514", "22001", "22P02":
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		case "40001", "40P01", "55P03", "57014", "53300":
			return fmt.Errorf("%w: %v", ErrTemporary, err)
		}
		if strings.HasPrefix(pg.Code, "08") { // connection exceptions
			return fmt.Errorf("%w: %v", ErrTemporary, err)
		}
	case isSQLiteBusy(err):
		return fmt.Errorf("%w: %v", ErrTemporary, err)
	case isSQLiteConstraint(err):
		return fmt.Errorf("%w: %v", ErrConflict, err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %v", ErrTemporary, err)
	}
	return err
}

// retryable reports whether a transaction that failed with err may simply be run
// again: a serialization failure or deadlock on PostgreSQL, a busy SQLite file.
func retryable(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code == "40001" || pg.Code == "40P01"
	}
	return isSQLiteBusy(err)
}

func isSQLiteBusy(err error) bool {
	s := err.Error()
	return strings.Contains(s, "SQLITE_BUSY") || strings.Contains(s, "database is locked")
}

func isSQLiteConstraint(err error) bool {
	s := err.Error()
	return strings.Contains(s, "UNIQUE constraint failed") || strings.Contains(s, "FOREIGN KEY constraint failed")
}
