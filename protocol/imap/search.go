package imap

import (
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/mailgate/mailgate/models"
)

// Search answers SEARCH and UID SEARCH (RFC 9051 §6.4.4) with the ESEARCH
// return options MIN, MAX, COUNT, ALL and SAVE (RFC 4731, RFC 5182). The
// criteria become one SQL query over the messages and what the parser kept of
// their content; no body is read.
func (s *session) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (_ *imap.SearchData, err error) {
	s.begin()
	defer func() {
		verb := "SEARCH"
		if kind == imapserver.NumKindUID {
			verb = "UID SEARCH"
		}
		s.end(verb, err)
	}()
	v, err := s.selected()
	if err != nil {
		return nil, err
	}
	v.st.mu.Lock()
	key := v.searchKeyLocked(criteria)
	top := v.clientMax
	v.st.mu.Unlock()
	var found models.UIDSet
	if top > 0 {
		ctx, cancel := s.opCtx(opTimeout)
		defer cancel()
		err = s.srv.mbox.Search(ctx, s.mailboxID, top, &key, func(uid uint32) error {
			if n := len(found); n > 0 && found[n-1].Stop+1 == uid {
				found[n-1].Stop = uid
			} else {
				found = append(found, models.UIDRange{Start: uid, Stop: uid})
			}
			return nil
		})
		if err != nil {
			return nil, s.fail("search", err)
		}
	}
	data := v.searchData(kind, found)
	if options.ReturnSave {
		v.st.mu.Lock()
		v.searchRes = found
		v.st.mu.Unlock()
	}
	return data, nil
}

// searchData numbers the matches as the client asked, leaving out any the
// client does not know.
func (v *view) searchData(kind imapserver.NumKind, found models.UIDSet) *imap.SearchData {
	v.st.mu.Lock()
	defer v.st.mu.Unlock()
	data := &imap.SearchData{}
	var seqs imap.SeqSet
	var uids imap.UIDSet
	for _, r := range found {
		for u := r.Start; ; u++ {
			num := u
			if seq := v.seqLocked(u); seq == 0 {
				num = 0
			} else if kind == imapserver.NumKindSeq {
				num = seq
			}
			if num != 0 {
				if kind == imapserver.NumKindSeq {
					seqs = appendSeq(seqs, num)
				} else {
					uids = appendUID(uids, num)
				}
				if data.Min == 0 || num < data.Min {
					data.Min = num
				}
				data.Max = max(data.Max, num)
				data.Count++
			}
			if u == r.Stop {
				break
			}
		}
	}
	if kind == imapserver.NumKindSeq {
		data.All = seqs
	} else {
		data.All = uids
	}
	return data
}

// searchKeyLocked translates criteria for the store. Sequence numbers, "*"
// and "$" are resolved against the client's view here; \Recent, which only
// this session knows, becomes the UIDs recent in it.
func (v *view) searchKeyLocked(c *imap.SearchCriteria) models.SearchKey {
	and := models.SearchKey{Op: models.SearchAnd}
	add := func(k models.SearchKey) { and.Keys = append(and.Keys, k) }
	for _, set := range c.SeqNum {
		add(models.SearchKey{Op: models.SearchUID, UIDs: v.resolveLocked(set)})
	}
	for _, set := range c.UID {
		add(models.SearchKey{Op: models.SearchUID, UIDs: v.resolveLocked(set)})
	}
	if !c.Since.IsZero() {
		add(models.SearchKey{Op: models.SearchSince, Time: c.Since})
	}
	if !c.Before.IsZero() {
		add(models.SearchKey{Op: models.SearchBefore, Time: c.Before})
	}
	if !c.SentSince.IsZero() {
		add(models.SearchKey{Op: models.SearchSentSince, Time: c.SentSince})
	}
	if !c.SentBefore.IsZero() {
		add(models.SearchKey{Op: models.SearchSentBefore, Time: c.SentBefore})
	}
	for _, h := range c.Header {
		add(headerKey(h))
	}
	for _, b := range c.Body {
		add(models.SearchKey{Op: models.SearchBody, Value: b})
	}
	for _, t := range c.Text {
		add(models.SearchKey{Op: models.SearchText, Value: t})
	}
	for _, f := range c.Flag {
		add(v.flagKeyLocked(f))
	}
	for _, f := range c.NotFlag {
		add(models.SearchKey{Op: models.SearchNot, Keys: []models.SearchKey{v.flagKeyLocked(f)}})
	}
	if c.Larger > 0 {
		add(models.SearchKey{Op: models.SearchLarger, Size: c.Larger})
	}
	if c.Smaller > 0 {
		add(models.SearchKey{Op: models.SearchSmaller, Size: c.Smaller})
	}
	for i := range c.Not {
		add(models.SearchKey{Op: models.SearchNot, Keys: []models.SearchKey{v.searchKeyLocked(&c.Not[i])}})
	}
	for i := range c.Or {
		add(models.SearchKey{Op: models.SearchOr, Keys: []models.SearchKey{v.searchKeyLocked(&c.Or[i][0]), v.searchKeyLocked(&c.Or[i][1])}})
	}
	return and
}

// headerKey translates a header criterion. go-imap parses FROM, TO, CC and BCC
// as header criteria named "From", "To", "Cc" and "Bcc"; RFC 9051 §6.4.4 has
// them match the envelope's address fields (models.SearchAddress: decoded
// names, addresses and group names, whatever form the header used), not the
// header text. A HEADER criterion spelled exactly so cannot be told apart and
// is searched the same way.
func headerKey(h imap.SearchCriteriaHeaderField) models.SearchKey {
	switch h.Key {
	case "From", "To", "Cc", "Bcc":
		return models.SearchKey{Op: models.SearchAddress, Field: h.Key, Value: h.Value}
	}
	return models.SearchKey{Op: models.SearchHeader, Field: h.Key, Value: h.Value}
}

func (v *view) flagKeyLocked(f imap.Flag) models.SearchKey {
	if strings.EqualFold(string(f), `\Recent`) {
		recent := append(models.UIDSet(nil), v.recent...)
		return models.SearchKey{Op: models.SearchUID, UIDs: recent}
	}
	return models.SearchKey{Op: models.SearchFlag, Flag: string(f)}
}
