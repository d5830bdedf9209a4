package handlers

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/mailgate/mailgate/models"
)

// bindJSON decodes a JSON body into v, refusing unknown fields, trailing data and
// wrong types with a 400 that names the field.
func bindJSON(c *gin.Context, v any) error {
	ct := c.GetHeader("Content-Type")
	if ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return Errorf(http.StatusUnsupportedMediaType, CodeUnsupported, "request body must be application/json")
		}
	}
	dec := json.NewDecoder(c.Request.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return &HTTPError{Status: http.StatusBadRequest, Code: CodeInvalid, Message: "request body has data after the JSON value"}
	}
	if _, err := dec.Token(); err != io.EOF {
		return &HTTPError{Status: http.StatusBadRequest, Code: CodeInvalid, Message: "request body has data after the JSON value"}
	}
	return nil
}

func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return Errorf(http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("request body larger than %d bytes", mbe.Limit))
	case errors.Is(err, io.EOF):
		return Errorf(http.StatusBadRequest, CodeInvalid, "request body is empty; a JSON object is required")
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "body"
		}
		return &HTTPError{Status: http.StatusBadRequest, Code: CodeInvalid, Field: field,
			Message: fmt.Sprintf("%s: must be %s, not %s", field, jsonKind(te.Type.Kind().String()), te.Value)}
	case errors.As(err, &se):
		return Errorf(http.StatusBadRequest, CodeInvalid, fmt.Sprintf("request body is not valid JSON (at byte %d)", se.Offset))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		f := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &HTTPError{Status: http.StatusBadRequest, Code: CodeInvalid, Field: f, Message: fmt.Sprintf("%s: unknown field", f)}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return Errorf(http.StatusBadRequest, CodeInvalid, "request body is truncated JSON")
	}
	return Errorf(http.StatusBadRequest, CodeInvalid, "request body is not valid JSON")
}

func jsonKind(k string) string {
	switch k {
	case "int", "int64", "int32", "uint32", "uint64", "float64":
		return "a number"
	case "bool":
		return "true or false"
	case "string":
		return "a string"
	case "slice":
		return "an array"
	case "struct", "map":
		return "an object"
	}
	return k
}

// required reports a missing field.
func required(field string) error { return models.Invalid(field, "is required") }

// pageParams reads ?limit= (1..200, default 50) and ?cursor=.
func (h *Handlers) pageParams(c *gin.Context, scope string) (models.Page, error) {
	p := models.Page{Limit: 50}
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > models.MaxPageSize {
			return p, models.Invalid("limit", fmt.Sprintf("must be a whole number from 1 to %d", models.MaxPageSize))
		}
		p.Limit = n
	}
	if v := c.Query("cursor"); v != "" {
		after, err := h.cursors.Decode(scope, v)
		if err != nil {
			return p, err
		}
		p.After = after
	}
	return p, nil
}

// nextCursor encodes the key to continue after, or "" on the last page.
func (h *Handlers) nextCursor(scope, after string) string {
	if after == "" {
		return ""
	}
	return h.cursors.Encode(scope, after)
}
