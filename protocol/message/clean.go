package message

import (
	"reflect"
	"strings"
	"unicode/utf8"
)

// A message is stored as it came, NUL bytes and invalid UTF-8 included; what
// parsing derives from it (subject, addresses, ENVELOPE, BODYSTRUCTURE, the
// text kept for search, the preview) is text, and text is valid UTF-8 without
// NUL: PostgreSQL refuses anything else in a TEXT column, IMAP forbids NUL in
// its strings, and SQLite must give the same answers as PostgreSQL. So every
// derived string passes through cleanText, and NUL or a byte that is not
// UTF-8 becomes U+FFFD.

// cleanText returns s as valid UTF-8 without NUL.
func cleanText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// clean makes every string of p (nested structures included) clean text.
func (p *Parsed) clean() {
	cleanStrings(reflect.ValueOf(p).Elem())
}

// cleanStrings cleans every string reachable from v in place. It walks by
// reflection so that a field added to the IMAP structures later (the library's
// or ours) cannot slip through uncleaned; a parsed message's structure is
// bounded (MaxStructureSize), so the walk is too.
func cleanStrings(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		if s := v.String(); v.CanSet() {
			if c := cleanText(s); c != s {
				v.SetString(c)
			}
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			cleanStrings(v.Elem())
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				cleanStrings(v.Field(i))
			}
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			cleanStrings(v.Index(i))
		}
	case reflect.Map:
		cleanMap(v)
	}
}

// cleanMap cleans a map's keys and values: map elements cannot be set in
// place, so changed entries are put back under their cleaned keys.
func cleanMap(m reflect.Value) {
	if m.IsNil() {
		return
	}
	it := m.MapRange()
	type entry struct{ oldKey, key, val reflect.Value }
	var changed []entry
	for it.Next() {
		k, val := it.Key(), it.Value()
		nk := reflect.New(k.Type()).Elem()
		nk.Set(k)
		cleanStrings(nk)
		nv := reflect.New(val.Type()).Elem()
		nv.Set(val)
		cleanStrings(nv)
		if !nk.Equal(k) || !reflect.DeepEqual(nv.Interface(), val.Interface()) {
			changed = append(changed, entry{k, nk, nv})
		}
	}
	for _, e := range changed {
		m.SetMapIndex(e.oldKey, reflect.Value{})
		m.SetMapIndex(e.key, e.val)
	}
}
