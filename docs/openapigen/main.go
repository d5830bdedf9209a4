// Command openapigen turns the Swagger 2.0 document that swag generates from the
// handlers' annotations into the OpenAPI 3.0 document mailgate publishes
// (openapi.yaml), and polishes it in code: a bearer security scheme, the error
// envelope and response headers where the server sends them, and checks that
// every operation has a unique operationId, a summary and tags.
//
//	go run ./docs/openapigen -in docs/swagger.json -out openapi.yaml
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	in := flag.String("in", "docs/swagger.json", "swag's Swagger 2.0 JSON")
	out := flag.String("out", "openapi.yaml", "where to write the OpenAPI 3.0 YAML")
	flag.Parse()
	src, err := os.ReadFile(*in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "openapigen:", err)
		os.Exit(1)
	}
	doc, err := Generate(src)
	if err != nil {
		fmt.Fprintln(os.Stderr, "openapigen:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, doc, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "openapigen:", err)
		os.Exit(1)
	}
}
