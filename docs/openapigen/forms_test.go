package main

import (
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
)

// TestGenerateFormsAndAlternatives shows the three polish steps swag needs: a
// JSON body and form fields on one operation become two media types of one
// request body; x-or-string properties accept a string too; errors are JSON
// only and files are never JSON.
func TestGenerateFormsAndAlternatives(t *testing.T) {
	src := []byte(`{"swagger":"2.0","info":{"title":"t","version":"1"},
	"definitions":{
		"Addr":{"type":"object","properties":{"email":{"type":"string"}}},
		"Req":{"type":"object","properties":{
			"to":{"type":"array","items":{"$ref":"#/definitions/Addr"},"x-or-string":true},
			"from":{"allOf":[{"$ref":"#/definitions/Addr"}],"x-or-string":true},
			"subject":{"type":"string"}}},
		"ErrorEnvelope":{"type":"object","properties":{"error":{"type":"object"}}}},
	"paths":{
		"/send":{"post":{"operationId":"send","summary":"s","tags":["t"],"consumes":["application/json","multipart/form-data"],
			"parameters":[{"name":"body","in":"body","required":true,"schema":{"$ref":"#/definitions/Req"}},
				{"name":"to","in":"formData","type":"array","items":{"type":"string"},"collectionFormat":"multi"},
				{"name":"files","in":"formData","type":"file"}],
			"responses":{"202":{"description":"ok"},"400":{"description":"bad","schema":{"$ref":"#/definitions/ErrorEnvelope"}}}}},
		"/raw":{"get":{"operationId":"raw","summary":"r","tags":["t"],"produces":["message/rfc822","application/json"],
			"responses":{"200":{"description":"ok","schema":{"type":"file"}},"404":{"description":"no","schema":{"$ref":"#/definitions/ErrorEnvelope"}}}}}}}`)
	out, err := Generate(src)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(out)
	if err != nil {
		t.Fatal(err)
	}
	body := doc.Paths.Value("/send").Post.RequestBody.Value
	form := body.Content.Get("multipart/form-data")
	if body.Content.Get("application/json") == nil || form == nil || form.Schema.Value.Properties["files"].Value.Items.Value.Format != "binary" ||
		!form.Schema.Value.Properties["to"].Value.Type.Is("array") {
		t.Fatalf("request body: %s", out)
	}
	req := doc.Components.Schemas["Req"].Value
	if len(req.Properties["to"].Value.Items.Value.OneOf) != 2 || len(req.Properties["from"].Value.OneOf) != 2 ||
		strings.Contains(string(out), "x-or-string") {
		t.Fatalf("x-or-string: %s", out)
	}
	raw := doc.Paths.Value("/raw").Get.Responses
	if raw.Value("200").Value.Content.Get("application/json") != nil || raw.Value("200").Value.Content.Get("message/rfc822") == nil ||
		len(raw.Value("404").Value.Content) != 1 || raw.Value("404").Value.Content["application/json"] == nil {
		t.Fatalf("media types: %s", out)
	}
}
