package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestDocsAreCurrent fails when docs/ or openapi.yaml differ from what
// `go generate` makes from the code: run `go generate .` and commit the result.
func TestDocsAreCurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("regenerating the docs builds swag; not in -short")
	}
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	tmp := filepath.Join(t.TempDir(), "docs") // swag names the package after the folder
	cmd := exec.Command("go", "tool", "swag", "init", "--quiet", "-g", "main.go", "-o", tmp, "--outputTypes", "go,json,yaml", "--parseDependency=false")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("swag init: %v\n%s", err, out)
	}
	for _, f := range []string{"docs.go", "swagger.json", "swagger.yaml"} {
		want, err := os.ReadFile(filepath.Join(tmp, f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(root, "docs", f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("docs/%s is stale: run `go generate .`", f)
		}
	}
	src, err := os.ReadFile(filepath.Join(tmp, "swagger.json"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := Generate(src)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(root, "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("openapi.yaml is stale: run `go generate .`")
	}
}

// TestGenerateRefusesGaps shows the polish step rejects an operation without an
// operationId and an error response without the envelope.
func TestGenerateRefusesGaps(t *testing.T) {
	bad := []byte(`{"swagger":"2.0","info":{"title":"t","version":"1"},"paths":{"/x":{"get":{"summary":"s","tags":["t"],
		"responses":{"200":{"description":"ok"},"404":{"description":"missing"}}}}}}`)
	_, err := Generate(bad)
	if err == nil {
		t.Fatal("Generate accepted an operation without operationId and an error without the envelope")
	}
	for _, want := range []string{"operationId", "error envelope"} {
		if !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
