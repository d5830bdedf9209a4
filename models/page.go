package models

// MaxPageSize bounds every list query.
const MaxPageSize = 200

// Page asks for up to Limit items that sort after the key After ("" for the first page).
type Page struct {
	After string
	Limit int
}

func (p Page) limit() int {
	if p.Limit <= 0 || p.Limit > MaxPageSize {
		return MaxPageSize
	}
	return p.Limit
}

// trim cuts a result fetched with limit+1 rows to the page and tells the key to
// continue after, or "" when this was the last page.
func trim[T any](rows []T, limit int, key func(T) string) ([]T, string) {
	if len(rows) <= limit {
		return rows, ""
	}
	rows = rows[:limit]
	return rows, key(rows[len(rows)-1])
}
