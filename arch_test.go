package main

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/mailgate/mailgate"

// allowed lists, per package (by prefix), which of the project's packages it may
// import: main → api → handlers → protocol → models, and within protocol the
// mail core below the wire servers.
var allowed = map[string][]string{
	"models":            {"models"},
	"models/modelstest": {"models", "migrations"},                                                                // test support: a migrated store per test
	"api/apitest":       {"api", "handlers", "models", "protocol/auth", "protocol/mailbox", "protocol/delivery"}, // test support: wires the API as main does
	"migrations":        {},
	"protocol/message":  {},
	"protocol/auth":     {"models"},
	"protocol/wire":     {},
	"protocol/mailbox":  {"models", "protocol/message"},
	"protocol/delivery": {"models", "protocol/mailbox", "protocol/message"},
	"protocol/queue":    {"models", "protocol/mailbox", "protocol/message", "protocol/delivery"},
	"protocol/smtp":     {"models", "protocol/auth", "protocol/wire", "protocol/delivery", "protocol/mailbox", "protocol/message"},
	"protocol/imap":     {"models", "protocol/auth", "protocol/wire", "protocol/mailbox", "protocol/message"},
	"protocol/pop3":     {"models", "protocol/auth", "protocol/wire", "protocol/mailbox", "protocol/message"},
	"handlers":          {"models", "protocol/auth", "protocol/mailbox", "protocol/delivery", "protocol/message"},
	"api":               {"handlers", "models", "docs", "api"},
	"docs":              {},
	"docs/openapigen":   {},
}

// TestImportGraph keeps the layering: a wire server never calls a handler, a
// handler never speaks a mail protocol, nothing below main imports upward.
func TestImportGraph(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imps, _ := strings.Cut(line, " ")
		rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
		if rel == "" || strings.HasPrefix(rel, "e2e") {
			continue // main and the end-to-end tests may import everything
		}
		rules, ok := rulesFor(rel)
		if !ok {
			t.Errorf("package %s has no import rule; add it to allowed", rel)
			continue
		}
		checked++
		for _, imp := range strings.Fields(imps) {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			dep := strings.TrimPrefix(imp, module+"/")
			if !permitted(dep, rules) {
				t.Errorf("%s imports %s, which the layering forbids", rel, dep)
			}
		}
	}
	if checked < 8 {
		t.Fatalf("checked only %d packages", checked)
	}
}

func rulesFor(rel string) ([]string, bool) {
	best, found := "", false
	for p := range allowed {
		if (rel == p || strings.HasPrefix(rel, p+"/")) && len(p) >= len(best) {
			best, found = p, true
		}
	}
	return allowed[best], found
}

func permitted(dep string, rules []string) bool {
	for _, r := range rules {
		if dep == r || strings.HasPrefix(dep, r+"/") {
			return true
		}
	}
	return false
}
