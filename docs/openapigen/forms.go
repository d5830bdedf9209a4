package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
	"github.com/getkin/kin-openapi/openapi3"
)

// Swagger 2.0 cannot say that an operation takes either a JSON body or a form
// (formData and body parameters exclude each other), but OpenAPI 3 can: one
// requestBody with two media types. swag writes both kinds of parameters as the
// annotations say; splitForms takes the form fields out before the conversion
// and joinForms puts them back as the multipart/form-data media type.

// formFields are the form parameters of one operation.
type formFields struct {
	method, path string
	params       openapi2.Parameters
}

func splitForms(d2 *openapi2.T) []formFields {
	var out []formFields
	for path, item := range d2.Paths {
		for method, op := range item.Operations() {
			var body bool
			var form, rest openapi2.Parameters
			for _, p := range op.Parameters {
				switch p.In {
				case "body":
					body = true
					rest = append(rest, p)
				case "formData":
					form = append(form, p)
				default:
					rest = append(rest, p)
				}
			}
			if !body || len(form) == 0 {
				continue
			}
			op.Parameters = rest
			out = append(out, formFields{method: method, path: path, params: form})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path+out[i].method < out[j].path+out[j].method })
	return out
}

func joinForms(doc *openapi3.T, forms []formFields) error {
	for _, f := range forms {
		op := doc.Paths.Value(f.path).GetOperation(f.method)
		if op == nil || op.RequestBody == nil || op.RequestBody.Value == nil {
			return fmt.Errorf("%s %s: form fields but no request body after conversion", f.method, f.path)
		}
		schema := &openapi3.Schema{Type: &openapi3.Types{"object"}, Properties: openapi3.Schemas{}}
		for _, p := range f.params {
			_, _, props, err := openapi2conv.ToV3Parameter(doc.Components, p, nil)
			if err != nil {
				return fmt.Errorf("%s %s: form field %s: %w", f.method, f.path, p.Name, err)
			}
			for name, s := range props {
				if s.Value != nil {
					delete(s.Value.Extensions, "x-formData-name")
					s.Value.Required = nil
					if p.Type.Is("file") {
						// Any number of files may share the field name.
						s = &openapi3.SchemaRef{Value: &openapi3.Schema{Type: &openapi3.Types{"array"}, Items: s, Description: s.Value.Description}}
						s.Value.Items.Value.Description = ""
					}
				}
				schema.Properties[name] = s
			}
			if p.Required {
				schema.Required = append(schema.Required, p.Name)
			}
		}
		op.RequestBody.Value.Content["multipart/form-data"] = openapi3.NewMediaType().WithSchema(schema)
	}
	return nil
}

// orString lets a property marked x-or-string (or each item of an array so
// marked) also be given as a string: swag cannot write a oneOf.
func orString(doc *openapi3.T) {
	for _, s := range doc.Components.Schemas {
		if s.Value == nil {
			continue
		}
		for name, p := range s.Value.Properties {
			if p.Value == nil || p.Value.Extensions["x-or-string"] == nil {
				continue
			}
			delete(p.Value.Extensions, "x-or-string")
			str := openapi3.NewStringSchema()
			str.Description = `An RFC 5322 mailbox: "alice@example.com" or "Alice Liddell <alice@example.com>".`
			if p.Value.Type.Is("array") {
				p.Value.Items = &openapi3.SchemaRef{Value: &openapi3.Schema{OneOf: openapi3.SchemaRefs{str.NewRef(), p.Value.Items}}}
				continue
			}
			target := p
			if len(p.Value.AllOf) == 1 { // swag's way of describing a reference
				target = p.Value.AllOf[0]
			}
			s.Value.Properties[name] = &openapi3.SchemaRef{Value: &openapi3.Schema{Description: p.Value.Description,
				OneOf: openapi3.SchemaRefs{str.NewRef(), target}}}
		}
	}
}

// exactMediaTypes keeps each response to the media types the server sends with
// it: errors are always the JSON envelope; a file (binary) is never JSON.
func exactMediaTypes(op *openapi3.Operation) {
	for code, resp := range op.Responses.Map() {
		r := resp.Value
		if r == nil || len(r.Content) < 2 {
			continue
		}
		for mt, c := range r.Content {
			binary := c.Schema != nil && c.Schema.Value != nil && c.Schema.Value.Format == "binary"
			json := strings.HasPrefix(mt, "application/json")
			if (code >= "400" && !json) || (code < "400" && binary && json) {
				delete(r.Content, mt)
			}
		}
	}
}
