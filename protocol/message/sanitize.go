package message

import (
	"regexp"
	"sync"

	"github.com/microcosm-cc/bluemonday"
)

// sanitizer is built once and only read afterwards (bluemonday policies are safe
// for concurrent use).
var sanitizer = sync.OnceValue(func() *bluemonday.Policy {
	p := bluemonday.UGCPolicy()
	// Mail HTML must not fetch anything when it is shown: a remote image is how a
	// sender learns when, where and whether a message was read. Images may only
	// come from the message itself (cid:, RFC 2392) or be inline data.
	p.AllowURLSchemes("cid")
	p.AllowDataURIImages()
	p.AllowAttrs("src").Matching(regexp.MustCompile(`^(?i)(cid:|data:image/(png|gif|jpeg|webp);base64,)`)).OnElements("img")
	// Links stay, but open elsewhere and tell the target nothing.
	p.RequireNoReferrerOnLinks(true)
	p.AddTargetBlankToFullyQualifiedLinks(true)
	return p
})

// SanitizeHTML returns mail HTML made safe to show in a browser: no scripts, no
// event handlers, no styles, no forms or frames, and nothing loaded from
// elsewhere (images only from cid: or data: URLs).
func SanitizeHTML(html string) string {
	if html == "" {
		return ""
	}
	return sanitizer().Sanitize(html)
}
