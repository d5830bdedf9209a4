package message

import (
	"regexp"
	"sync"

	"github.com/microcosm-cc/bluemonday"
)

// sanitizer is built once and only read afterwards (bluemonday policies are safe
// for concurrent use).
var sanitizer = sync.OnceValue(newSanitizer)

// newSanitizer allows the structure and text formatting of user-generated HTML
// (the elements of bluemonday's UGC policy) and the layout attributes mail uses,
// and nothing that runs or fetches: no script, style sheet, form, frame, object
// or event handler. Images may only come from the message itself (cid:, RFC
// 2392) or inline data: a remote image is how a sender learns when, where and
// whether a message was read.
func newSanitizer() *bluemonday.Policy {
	p := bluemonday.NewPolicy()
	p.AllowStandardAttributes()
	p.AllowStandardURLs()
	p.RequireNoReferrerOnLinks(true)
	p.AddTargetBlankToFullyQualifiedLinks(true)
	p.AllowElements("article", "aside", "figure", "section", "summary", "h1", "h2", "h3", "h4", "h5", "h6", "hgroup",
		"br", "div", "hr", "p", "span", "wbr", "abbr", "acronym", "cite", "code", "dfn", "em", "figcaption", "mark", "s",
		"samp", "strong", "sub", "sup", "var", "b", "i", "pre", "small", "strike", "tt", "u", "rp", "rt", "ruby", "center", "font",
		"details", "blockquote", "q", "del", "ins", "time", "bdi", "bdo")
	p.AllowAttrs("open").Matching(regexp.MustCompile(`(?i)^(|open)$`)).OnElements("details")
	p.AllowAttrs("href").OnElements("a")
	p.AllowAttrs("cite").OnElements("blockquote", "q", "del", "ins")
	p.AllowAttrs("datetime").Matching(bluemonday.ISO8601).OnElements("time", "del", "ins")
	p.AllowAttrs("dir").Matching(bluemonday.Direction).OnElements("bdi", "bdo")
	p.AllowLists()
	p.AllowTables()
	// Mail layout: table geometry and colours, old-style font tags.
	p.AllowAttrs("align").Matching(regexp.MustCompile(`(?i)^(left|right|center|justify)$`)).OnElements("p", "div", "table", "tr", "td", "th", "img")
	p.AllowAttrs("valign").Matching(regexp.MustCompile(`(?i)^(top|middle|bottom|baseline)$`)).OnElements("tr", "td", "th")
	p.AllowAttrs("width", "height").Matching(bluemonday.NumberOrPercent).OnElements("table", "td", "th", "img")
	p.AllowAttrs("bgcolor", "color").Matching(regexp.MustCompile(`^(#[0-9a-fA-F]{3,8}|[a-zA-Z]{1,20})$`)).OnElements("table", "tr", "td", "th", "font")
	p.AllowAttrs("border", "cellpadding", "cellspacing").Matching(bluemonday.Integer).OnElements("table")
	p.AllowAttrs("face").Matching(regexp.MustCompile(`^[\w ,'-]{1,100}$`)).OnElements("font")
	p.AllowAttrs("size").Matching(regexp.MustCompile(`^[+-]?[1-7]$`)).OnElements("font")
	// Inline styles, checked property by property; none of these can take a url().
	p.AllowStyles("color", "background-color", "font-family", "font-size", "font-style", "font-weight", "text-align",
		"text-decoration", "line-height", "vertical-align", "white-space", "width", "height", "max-width",
		"margin", "margin-top", "margin-right", "margin-bottom", "margin-left",
		"padding", "padding-top", "padding-right", "padding-bottom", "padding-left",
		"border", "border-collapse", "border-color", "border-style", "border-width").Globally()
	// Images from the message itself only.
	p.AllowURLSchemes("cid")
	p.AllowDataURIImages()
	p.AllowAttrs("alt").Matching(bluemonday.Paragraph).OnElements("img")
	p.AllowAttrs("src").Matching(regexp.MustCompile(`^(?i)(cid:|data:image/(png|gif|jpeg|webp);base64,)`)).OnElements("img")
	return p
}

// SanitizeHTML returns mail HTML made safe to show in a browser: no scripts, no
// event handlers, no forms or frames, and nothing loaded from elsewhere (images
// only from cid: or data: URLs; styles only of properties that take no URL).
func SanitizeHTML(html string) string {
	if html == "" {
		return ""
	}
	return sanitizer().Sanitize(html)
}
