package handlers

import (
	"encoding/json"
	"reflect"
	"sort"
	"testing"
)

// FuzzJSONKeys checks the quick key scan against encoding/json on every valid
// document: the same top-level keys, and the same keys in each attachment.
func FuzzJSONKeys(f *testing.F) {
	f.Add(`{"to":["a@b"],"attachments":[{"filename":"x","content":"QUJD"},{"a\"b":1}]}`)
	f.Add(`{"a\\":"\\\"}","attachments":[],"b":{"attachments":[{"x":1}]},"c":[1,{"d":[]}]}`)
	f.Add(` { "attachments" : [ { } , { "k" : null } ] , "n" : -1.5e3 , "t" : true } `)
	f.Add(`{"attachments":"not an array","é":"ü"}`)
	f.Fuzz(func(t *testing.T, doc string) {
		var top map[string]json.RawMessage
		if json.Unmarshal([]byte(doc), &top) != nil {
			return // not a valid object: never scanned
		}
		gotTop, gotAtts := jsonKeys([]byte(doc))
		if !sameKeys(gotTop, top) {
			t.Fatalf("top keys %q, want those of %v", gotTop, top)
		}
		var atts []json.RawMessage
		if json.Unmarshal(top["attachments"], &atts) != nil {
			return
		}
		var want [][]string
		for _, a := range atts {
			var m map[string]json.RawMessage
			if json.Unmarshal(a, &m) == nil && len(a) > 0 && a[0] == '{' {
				var keys []string
				for k := range m {
					keys = append(keys, k)
				}
				want = append(want, keys)
			}
		}
		if len(gotAtts) != len(want) {
			t.Fatalf("%d attachment objects, want %d", len(gotAtts), len(want))
		}
		for i := range want {
			if !sameKeys(gotAtts[i], toMap(want[i])) {
				t.Fatalf("attachment %d keys %q, want %q", i, gotAtts[i], want[i])
			}
		}
	})
}

func toMap(keys []string) map[string]json.RawMessage {
	m := map[string]json.RawMessage{}
	for _, k := range keys {
		m[k] = nil
	}
	return m
}

// sameKeys compares a scanned key list (duplicates possible) with a map's keys.
func sameKeys(got []string, want map[string]json.RawMessage) bool {
	seen := map[string]bool{}
	var uniq []string
	for _, k := range got {
		if !seen[k] {
			seen[k] = true
			uniq = append(uniq, k)
		}
	}
	var w []string
	for k := range want {
		w = append(w, k)
	}
	sort.Strings(uniq)
	sort.Strings(w)
	return reflect.DeepEqual(uniq, w) || len(uniq) == 0 && len(w) == 0
}
