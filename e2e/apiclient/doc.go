// Package apiclient is a Go client for mailgate's HTTP API, generated from
// openapi.yaml by oapi-codegen (pinned in go.mod as a tool). The end-to-end tests
// drive the server with nothing but this client, which proves the document is
// exact enough for generated clients.
package apiclient

//go:generate go tool oapi-codegen -config oapi-codegen.yaml ../../openapi.yaml
