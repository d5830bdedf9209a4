package api_test

import (
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/api"
	"github.com/mailgate/mailgate/api/apitest"
)

// TestRoutesMatchDocument fails when a route of the router is missing from
// openapi.yaml or the other way round.
func TestRoutesMatchDocument(t *testing.T) {
	doc, _ := apitest.Document(t)
	param := regexp.MustCompile(`:([a-z_]+)`)
	inRouter := map[string]bool{}
	for _, r := range api.Routes() {
		method, path, _ := strings.Cut(r, " ")
		inRouter[method+" "+param.ReplaceAllString(path, "{$1}")] = true
	}
	inDoc := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			inDoc[method+" "+path] = true
		}
	}
	var missing, extra []string
	for r := range inRouter {
		if !inDoc[r] {
			missing = append(missing, r)
		}
	}
	for r := range inDoc {
		if !inRouter[r] {
			extra = append(extra, r)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("routes not in openapi.yaml: %v", missing)
	}
	if len(extra) > 0 {
		t.Errorf("openapi.yaml operations the router lacks: %v", extra)
	}
	if len(inRouter) < 20 {
		t.Fatalf("only %d routes", len(inRouter))
	}
}
