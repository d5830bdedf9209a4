package mailbox

import "github.com/mailgate/mailgate/protocol/message"

// NewSpoolLimit returns a spool in the service's spool directory with its own
// size limit (0: none). A front end that enforces a size on the wire (SMTP SIZE)
// adds its trace header and may grow the message by normalizing line endings,
// so the stored size can exceed the wire limit a little.
func (s *Service) NewSpoolLimit(limit int64) *message.Spool {
	return message.NewSpool(s.opt.SpoolDir, limit)
}
