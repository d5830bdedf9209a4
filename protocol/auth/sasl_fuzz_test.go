package auth

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzLoginServer drives the LOGIN mechanism with any responses: it must ask
// only its two questions, check credentials once with exactly the bytes given,
// succeed only if they were right, and refuse anything after the end.
func FuzzLoginServer(f *testing.F) {
	f.Add(false, []byte(nil), []byte("alice@example.test"), []byte("secret"), []byte("extra"))
	f.Add(true, []byte("alice@example.test"), []byte("secret"), []byte(""), []byte(""))
	f.Add(true, []byte(""), []byte(""), []byte("x"), []byte("y"))
	f.Add(false, []byte(nil), bytes.Repeat([]byte("u"), 2000), []byte("secret"), []byte(nil))
	f.Add(true, []byte("a\x00b"), bytes.Repeat([]byte("p"), 1025), []byte("z"), []byte(nil))
	f.Fuzz(func(t *testing.T, withIR bool, ir, r1, r2, r3 []byte) {
		var calls int
		var gotUser, gotPass string
		l := &loginServer{login: func(u, p string) error {
			calls++
			gotUser, gotPass = u, p
			if u == "alice@example.test" && p == "secret" {
				return nil
			}
			return ErrFailed
		}}
		var responses [][]byte
		if withIR {
			if ir == nil {
				ir = []byte{}
			}
			responses = append(responses, ir)
		} else {
			responses = append(responses, nil)
		}
		responses = append(responses, r1, r2, r3)
		var given [][]byte // responses that answered a question
		finished := false
		for i, resp := range responses {
			ch, done, err := l.Next(resp)
			if finished {
				if err == nil || done {
					t.Fatalf("step %d after the end: %q %v %v", i, ch, done, err)
				}
				continue
			}
			if err != nil || done {
				finished = true
				if done && (err != nil || gotUser != "alice@example.test" || gotPass != "secret") {
					t.Fatalf("done with %q/%q, err %v", gotUser, gotPass, err)
				}
				if err != nil && !errors.Is(err, ErrFailed) && !errors.Is(err, ErrCredentialTooLong) {
					t.Fatalf("unexpected error kind %v", err)
				}
				if resp != nil {
					given = append(given, resp)
				}
				continue
			}
			if s := string(ch); s != "Username:" && s != "Password:" {
				t.Fatalf("challenge %q", ch)
			}
			if resp != nil {
				given = append(given, resp)
			}
		}
		if calls > 1 {
			t.Fatalf("credentials checked %d times", calls)
		}
		if calls == 1 {
			if len(given) < 2 || gotUser != string(given[0]) || gotPass != string(given[1]) {
				t.Fatalf("checked %q/%q, client gave %q", gotUser, gotPass, given)
			}
		}
	})
}
