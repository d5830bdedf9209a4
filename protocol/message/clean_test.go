package message

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// nulMessage puts NUL and bytes that are not UTF-8 everywhere parsing derives
// text from: header fields, parameters, part headers and bodies.
const nulMessage = "From: Nu\x00l \xff <a@b.c>\r\nTo: \"g\xfe\" <t@b.c>\r\nSubject: s\x00u\xc3\x28b\r\n" +
	"Message-ID: <i\x00d@x>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\x00\"\r\n\r\n" +
	"--b\x00\r\nContent-Type: text/plain; charset=\"utf-8\"; x\x00=\"v\xff\"\r\n\r\nte\x00xt \xff\xfe\r\n" +
	"--b\x00\r\nContent-Type: application/octet-stream; name=\"f\x00\xff.bin\"\r\nContent-ID: <c\x00>\r\n" +
	"Content-Disposition: attachment; filename=\"f\x00\xff.bin\"\r\nContent-Description: d\x00\xff\r\n\r\n\x00\x01\xff\r\n" +
	"--b\x00--\r\n"

// uncleanStrings lists the strings reachable from v that hold NUL or are not
// UTF-8, by path.
func uncleanStrings(v reflect.Value, path string) []string {
	var bad []string
	switch v.Kind() {
	case reflect.String:
		if s := v.String(); !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0 {
			bad = append(bad, path+"="+s)
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			bad = append(bad, uncleanStrings(v.Elem(), path)...)
		}
	case reflect.Struct:
		for i := 0; i < v.NumField(); i++ {
			if f := v.Type().Field(i); f.IsExported() {
				bad = append(bad, uncleanStrings(v.Field(i), path+"."+f.Name)...)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			bad = append(bad, uncleanStrings(v.Index(i), fmt.Sprintf("%s[%d]", path, i))...)
		}
	case reflect.Map:
		it := v.MapRange()
		for it.Next() {
			bad = append(bad, uncleanStrings(it.Key(), path+"{key}")...)
			bad = append(bad, uncleanStrings(it.Value(), path+"{"+it.Key().String()+"}")...)
		}
	}
	return bad
}

// TestParseDerivesCleanText: what parsing derives from a message full of NUL
// and bytes that are not UTF-8 is text a TEXT column and an IMAP string accept,
// the bad bytes shown as U+FFFD, and the structure still describes both parts.
func TestParseDerivesCleanText(t *testing.T) {
	p, err := Parse(strings.NewReader(nulMessage))
	if err != nil {
		t.Fatal(err)
	}
	if bad := uncleanStrings(reflect.ValueOf(p), "Parsed"); len(bad) > 0 {
		t.Fatalf("derived strings that are not clean text: %q", bad)
	}
	if p.Subject != "s\uFFFDu\uFFFD(b" {
		t.Errorf("subject %q", p.Subject)
	}
	if p.Envelope.Subject != p.Subject {
		t.Errorf("envelope subject %q, want %q", p.Envelope.Subject, p.Subject)
	}
	if !strings.Contains(p.SearchText, "te\uFFFDxt \uFFFD") {
		t.Errorf("search text %q", p.SearchText)
	}
	for _, enc := range []string{EncodeEnvelope(p.Envelope), EncodeBodyStructure(p.BodyStructure)} {
		if strings.Contains(enc, `\u0000`) || !utf8.ValidString(enc) {
			t.Errorf("stored form not clean: %s", enc)
		}
	}
	if !strings.Contains(EncodeBodyStructure(p.BodyStructure), "f\uFFFD\uFFFD.bin") {
		t.Errorf("attachment name not kept: %s", EncodeBodyStructure(p.BodyStructure))
	}
}

func TestCleanText(t *testing.T) {
	for in, want := range map[string]string{
		"":                   "",
		"plain":              "plain",
		"é ok":               "é ok",
		"a\x00b":             "a\uFFFDb",
		"\xff\xfe":           "\uFFFD",
		"x\xc3\x28\x00":      "x\uFFFD(\uFFFD",
		string([]byte{0, 0}): "\uFFFD\uFFFD",
	} {
		if got := cleanText(in); got != want {
			t.Errorf("cleanText(%q) = %q, want %q", in, got, want)
		}
	}
	if got := cleanText("ok"); !bytes.Equal([]byte(got), []byte("ok")) {
		t.Error("clean text changed")
	}
}
