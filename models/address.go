package models

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

var idnaProfile = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.Transitional(false), idna.StrictDomainName(true), idna.ValidateLabels(true), idna.VerifyDNSLength(true))

// NormalizeDomain validates a domain name and returns its canonical form:
// lower-case ASCII, internationalized labels as IDNA A-labels ("xn--…").
func NormalizeDomain(name string) (string, error) {
	name = strings.TrimSuffix(strings.TrimSpace(name), ".")
	if name == "" {
		return "", fmt.Errorf("domain name is empty")
	}
	if !utf8.ValidString(name) {
		return "", fmt.Errorf("domain name is not valid UTF-8")
	}
	ascii, err := idnaProfile.ToASCII(name)
	if err != nil {
		return "", fmt.Errorf("domain name %q is not valid: %v", name, err)
	}
	ascii = strings.ToLower(ascii)
	if !strings.Contains(ascii, ".") && ascii != "localhost" {
		return "", fmt.Errorf("domain name %q needs at least two labels", name)
	}
	return ascii, nil
}

// NormalizeEmail validates an address and returns its canonical form: the local
// part lower-cased (mailgate treats local parts case-insensitively, as nearly all
// servers do) and the domain normalized as NormalizeDomain does.
func NormalizeEmail(addr string) (string, error) {
	addr = strings.TrimSpace(addr)
	addr = strings.TrimSuffix(strings.TrimPrefix(addr, "<"), ">")
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return "", fmt.Errorf("address %q must be local@domain", addr)
	}
	local, domain := addr[:at], addr[at+1:]
	if err := validLocalPart(local); err != nil {
		return "", fmt.Errorf("address %q: %v", addr, err)
	}
	d, err := NormalizeDomain(domain)
	if err != nil {
		return "", fmt.Errorf("address %q: %v", addr, err)
	}
	return strings.ToLower(local) + "@" + d, nil
}

// SplitEmail returns the local part and domain of a normalized address.
func SplitEmail(addr string) (local, domain string) {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr, ""
	}
	return addr[:at], addr[at+1:]
}

// validLocalPart accepts RFC 5322 dot-atoms, with UTF-8 letters as RFC 6531 allows.
func validLocalPart(s string) error {
	if len(s) > 64 {
		return fmt.Errorf("local part longer than 64 octets")
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("local part is not valid UTF-8")
	}
	if strings.HasPrefix(s, ".") || strings.HasSuffix(s, ".") || strings.Contains(s, "..") {
		return fmt.Errorf("local part has a misplaced dot")
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("!#$%&'*+-/=?^_`{|}~.", r):
		case r > 127 && (unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.IsMark(r)):
		default:
			return fmt.Errorf("local part contains %q", r)
		}
	}
	return nil
}
