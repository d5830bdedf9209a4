package smtp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/delivery"
	"github.com/mailgate/mailgate/protocol/message"
)

// spoolHeadroom is what the stored message may exceed MaxMessageBytes by: the
// trace header, plus bare LFs becoming CRLF (at most doubling the size).
const spoolHeadroom = 64 << 10

// Data receives the message, stores it for every recipient and answers 250 only
// once it is committed.
func (s *session) Data(r io.Reader) error {
	s.conn.Transfer(true) // Shutdown lets this message finish
	defer s.conn.Transfer(false)
	err := s.data(r)
	var se *gosmtp.SMTPError
	s.srv.wire.Metrics().Message(errors.As(err, &se) && se.Code/100 == 2)
	return s.done("DATA", err)
}

func (s *session) data(r io.Reader) error {
	env, helo, err := s.envelope()
	if err != nil {
		return s.refuse("DATA", err)
	}
	id := models.NewID()
	sp := s.srv.dlv.Mailbox().NewSpoolLimit(2*s.srv.opt.MaxMessageBytes + spoolHeadroom)
	defer sp.Close()
	rcpt := ""
	if len(env.Recipients) == 1 {
		rcpt = env.Recipients[0].Address
	}
	trace := receivedHeader(traceInfo{
		helo: helo, remote: s.conn.RemoteAddr(), host: s.srv.opt.Hostname,
		proto: withProtocol(s.tls, env.User != nil), id: id, rcpt: rcpt, at: time.Now(),
	})
	if _, err := sp.WriteString(trace); err != nil {
		return s.refuse("DATA", fmt.Errorf("spool trace header: %w", err))
	}
	// Stream the body: whatever its size, it is in memory once at most (up to
	// the spool's memory limit) and on disk beyond.
	if _, err := io.Copy(sp, r); err != nil {
		if isTransferAbort(err) {
			// The client went quiet or away: nothing of ours failed.
			s.log.Info("message transfer aborted", "id", id, "err", err)
			return replyTryLater
		}
		return s.refuse("DATA", fmt.Errorf("receive message: %w", err))
	}
	if err := sp.Finish(); err != nil {
		return s.refuse("DATA", fmt.Errorf("receive message: %w", err))
	}
	if env.User != nil {
		if err := s.checkFromHeader(env.User, sp); err != nil {
			return s.refuse("DATA", err)
		}
	}
	ctx, cancel := context.WithTimeout(s.conn.Context(), storeTimeout)
	defer cancel()
	res, err := s.srv.dlv.Deliver(ctx, env, sp)
	if err != nil {
		return s.refuse("DATA", err)
	}
	s.log.Info("message accepted", "id", id, "from", env.From, "size", sp.Size(),
		"delivered", len(res.Delivered), "queued", len(res.Queued), "failed", len(res.Failed))
	// A reply rather than nil, to tell the client the id it can quote.
	return &gosmtp.SMTPError{Code: 250, EnhancedCode: gosmtp.EnhancedCode{2, 0, 0}, Message: "OK: queued as " + id}
}

// checkFromHeader refuses a message whose From: fields name an address the
// authenticated user may not send as (RFC 6409 §8.1 lets a submission server
// enforce this).
func (s *session) checkFromHeader(u *models.User, src message.Source) error {
	fields, err := headerFields(src.Reader(), "From")
	if err != nil {
		return fmt.Errorf("%w: %w", errFromDenied, err)
	}
	ctx, cancel := s.commandContext()
	defer cancel()
	for _, f := range fields {
		addrs, ok := fromAddresses(f)
		if !ok {
			return fmt.Errorf("%w: unparsable From field", errFromDenied)
		}
		for _, a := range addrs {
			err := s.srv.dlv.CheckSender(ctx, u, a)
			switch {
			case err == nil:
			case isSenderRefusal(err):
				return fmt.Errorf("%w: %s: %w", errFromDenied, a, err)
			default:
				return fmt.Errorf("check From %s: %w", a, err)
			}
		}
	}
	return nil
}

// isTransferAbort tells whether a read of the message failed on the client's
// side: a timeout, a closed connection, a reset, or BDAT aborted by RSET.
func isTransferAbort(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, gosmtp.ErrDataReset) || errors.Is(err, syscall.ECONNRESET)
}

func isSenderRefusal(err error) bool {
	return errors.Is(err, delivery.ErrSenderDenied) || errors.Is(err, delivery.ErrBadAddress)
}
