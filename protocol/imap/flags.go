package imap

import (
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/mailgate/mailgate/models"
)

// systemFlags are the flags every mailbox offers (RFC 9051 §2.3.2). Keywords
// are offered through \* in PERMANENTFLAGS: any may be created, and their case
// is kept as first given (the reference server lower-cases them; clients do
// not expect that).
var systemFlags = []imap.Flag{imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagSeen, imap.FlagDraft}

// maxKeywordLen bounds one keyword; longer ones are refused.
const maxKeywordLen = 100

func toIMAPFlags(f models.Flags) []imap.Flag {
	out := make([]imap.Flag, 0, 2+len(f.Keywords))
	if f.Seen {
		out = append(out, imap.FlagSeen)
	}
	if f.Answered {
		out = append(out, imap.FlagAnswered)
	}
	if f.Flagged {
		out = append(out, imap.FlagFlagged)
	}
	if f.Deleted {
		out = append(out, imap.FlagDeleted)
	}
	if f.Draft {
		out = append(out, imap.FlagDraft)
	}
	for _, k := range f.Keywords {
		out = append(out, imap.Flag(k))
	}
	return out
}

// fromIMAPFlags converts flags a client gave. \Recent cannot be set by a client
// (RFC 3501 §2.3.2) and other unknown system flags are not stored: both are
// ignored. A keyword that is too long is ErrInvalid.
func fromIMAPFlags(flags []imap.Flag) (models.Flags, error) {
	var f models.Flags
	for _, fl := range flags {
		switch strings.ToLower(string(fl)) {
		case `\seen`:
			f.Seen = true
		case `\answered`:
			f.Answered = true
		case `\flagged`:
			f.Flagged = true
		case `\deleted`:
			f.Deleted = true
		case `\draft`:
			f.Draft = true
		default:
			if strings.HasPrefix(string(fl), `\`) {
				continue
			}
			if len(fl) > maxKeywordLen {
				return f, models.Invalid("flags", "keyword too long")
			}
			f.Keywords = append(f.Keywords, string(fl))
		}
	}
	return f, nil
}
