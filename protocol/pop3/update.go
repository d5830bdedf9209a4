package pop3

import (
	"fmt"

	"github.com/mailgate/mailgate/models"
)

// quit ends the session. From TRANSACTION it enters UPDATE (RFC 1939 §6): the
// messages marked deleted are expunged in one transaction, so either all go or
// none does and the client is told -ERR [SYS/TEMP]; then the lock is released,
// before +OK, so the client's next session finds the maildrop free.
func (c *conn) quit(arg string) error {
	c.done = true
	if c.state != stateTransaction {
		c.writeLine("+OK " + c.srv.opt.Hostname + " POP3 server signing off")
		return nil
	}
	c.state = stateUpdate
	// A shutdown lets UPDATE finish and answer.
	c.wc.Transfer(true)
	defer c.wc.Transfer(false)
	deleted, retrieved := c.drop.marked()
	ctx, cancel := c.wc.OpContext()
	defer cancel()
	if len(deleted) > 0 {
		gone, err := c.srv.mbox.Expunge(ctx, c.drop.mailboxID, models.UIDs(deleted...), false)
		if err != nil {
			c.log.Error("expunge at QUIT failed; nothing deleted", "marked", len(deleted), "err", err)
			c.releaseLease()
			c.writeLine(fmt.Sprintf("-ERR [%s] Could not delete messages; none were deleted, try again later", codeSysTemp))
			return nil
		}
		c.log.Info("messages deleted", "count", len(gone))
	}
	if len(retrieved) > 0 {
		// What POP3 fetched shows as read in IMAP and the API. It is a courtesy:
		// failing here must not undo the deletions or alarm the client.
		if _, err := c.srv.mbox.SetFlags(ctx, c.drop.mailboxID, models.UIDs(retrieved...), models.FlagsAdd, models.Flags{Seen: true}); err != nil {
			c.log.Warn("mark retrieved messages seen", "err", err)
		}
	}
	c.releaseLease()
	c.writeLine(fmt.Sprintf("+OK %s POP3 server signing off (%d messages left)", c.srv.opt.Hostname, c.drop.count))
	return nil
}
