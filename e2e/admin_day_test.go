package e2e

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	openapi_types "github.com/oapi-codegen/runtime/types"

	"github.com/mailgate/mailgate/e2e/apiclient"
)

// client is a generated client, authenticated with token when given.
func client(t testing.TB, s *Server, token string) *apiclient.ClientWithResponses {
	t.Helper()
	c, err := apiclient.NewClientWithResponses(s.URL(""), apiclient.WithRequestEditorFn(func(_ context.Context, r *http.Request) error {
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func login(t testing.TB, s *Server, email, password string) string {
	t.Helper()
	r, err := client(t, s, "").LoginWithResponse(context.Background(), apiclient.LoginJSONRequestBody{Email: openapi_types.Email(email), Password: password})
	if err != nil {
		t.Fatal(err)
	}
	if r.JSON200 == nil {
		t.Fatalf("login %s: %d %s", email, r.StatusCode(), r.Body)
	}
	return r.JSON200.AccessToken
}

// check fails the test unless the call succeeded with status want.
func check(t testing.TB, what string, r interface{ StatusCode() int }, err error, want int) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if r.StatusCode() != want {
		t.Fatalf("%s: status %d, want %d: %+v", what, r.StatusCode(), want, r)
	}
}

// TestAdminDay does an admin's day with nothing but the client generated from
// openapi.yaml: log in, create a domain, users and a group, change a member,
// disable a user, page through users, and delete everything.
func TestAdminDay(t *testing.T) {
	s := Start(t, nil)
	ctx := context.Background()
	c := client(t, s, login(t, s, s.Admin, s.Pass))

	desc := "the shop"
	dr, err := c.CreateDomainWithResponse(ctx, apiclient.CreateDomainJSONRequestBody{Name: "Shop.Example", Description: &desc})
	check(t, "create domain", dr, err, 201)
	if dr.JSON201.Name != "shop.example" {
		t.Fatalf("domain %+v", dr.JSON201)
	}
	for i := 0; i < 5; i++ {
		email := openapi_types.Email(fmt.Sprintf("user%d@shop.example", i))
		name := fmt.Sprintf("User %d", i)
		ur, err := c.CreateUserWithResponse(ctx, apiclient.CreateUserJSONRequestBody{Email: email, Password: "password-" + name, DisplayName: &name})
		check(t, "create user", ur, err, 201)
		if ur.JSON201.Email != email {
			t.Fatalf("created %+v", ur.JSON201)
		}
	}
	members := []string{"user0@shop.example", "user1@shop.example"}
	gr, err := c.CreateGroupWithResponse(ctx, apiclient.CreateGroupJSONRequestBody{Email: "team@shop.example", Members: &members})
	check(t, "create group", gr, err, 201)
	if len(gr.JSON201.Members) != 2 {
		t.Fatalf("group %+v", gr.JSON201)
	}
	ar, err := c.AddGroupMemberWithResponse(ctx, "team@shop.example", "user2@shop.example")
	check(t, "add member", ar, err, 200)
	rr, err := c.RemoveGroupMemberWithResponse(ctx, "team@shop.example", "user0@shop.example")
	check(t, "remove member", rr, err, 204)
	ml, err := c.ListGroupMembersWithResponse(ctx, "team@shop.example")
	check(t, "members", ml, err, 200)
	if fmt.Sprint(ml.JSON200.Items) != "[user1@shop.example user2@shop.example]" {
		t.Fatalf("members %v", ml.JSON200.Items)
	}
	disabled := true
	up, err := c.UpdateUserWithResponse(ctx, "user3@shop.example", apiclient.UpdateUserJSONRequestBody{Disabled: &disabled})
	check(t, "disable user", up, err, 200)
	lr, err := client(t, s, "").LoginWithResponse(ctx, apiclient.LoginJSONRequestBody{Email: "user3@shop.example", Password: "password-User 3"})
	check(t, "disabled user's login", lr, err, 401)
	if lr.JSON401 == nil || lr.JSON401.Error.Code != "unauthorized" {
		t.Fatalf("401 body %s", lr.Body)
	}

	var seen []string
	limit, dom := 2, "shop.example"
	var cursor *string
	for pages := 0; pages < 10; pages++ {
		p, err := c.ListUsersWithResponse(ctx, &apiclient.ListUsersParams{Domain: &dom, Limit: &limit, Cursor: cursor})
		check(t, "list users", p, err, 200)
		for _, u := range p.JSON200.Items {
			seen = append(seen, string(u.Email))
		}
		if p.JSON200.NextCursor == "" {
			break
		}
		next := p.JSON200.NextCursor
		cursor = &next
	}
	if len(seen) != 5 {
		t.Fatalf("paged through %v", seen)
	}
	bad := "tampered"
	br, err := c.ListUsersWithResponse(ctx, &apiclient.ListUsersParams{Cursor: &bad})
	check(t, "bad cursor", br, err, 400)
	if br.JSON400 == nil || br.JSON400.Error.Field == nil || *br.JSON400.Error.Field != "cursor" {
		t.Fatalf("bad cursor answer %s", br.Body)
	}

	// Send and list mail, as a user, with the same client.
	u1 := client(t, s, login(t, s, "user1@shop.example", "password-User 1"))
	var to1, to2 apiclient.SendRequest_To_Item
	to1.FromSendRequestTo0("user2@shop.example")
	to2.FromSendRequestTo0("team@shop.example")
	subject, text := "Inventory", "Counted 42 boxes."
	pdf := []byte("%PDF-1.4 pretend")
	name, ctype := "count.pdf", "application/pdf"
	sr, err := u1.SendMessageWithResponse(ctx, nil, apiclient.SendMessageJSONRequestBody{
		To: &[]apiclient.SendRequest_To_Item{to1, to2}, Subject: &subject, Text: &text,
		Attachments: &[]apiclient.AttachmentInput{{Filename: &name, ContentType: &ctype, Content: &pdf}}})
	check(t, "send", sr, err, 202)
	if len(sr.JSON202.Accepted) != 2 || sr.JSON202.Id == nil {
		t.Fatalf("send result %s", sr.Body)
	}
	u2 := client(t, s, login(t, s, "user2@shop.example", "password-User 2"))
	q := "boxes"
	lm, err := u2.ListMessagesWithResponse(ctx, &apiclient.ListMessagesParams{Q: &q})
	check(t, "list mail", lm, err, 200)
	if len(lm.JSON200.Items) != 1 || lm.JSON200.Items[0].Subject != subject || !lm.JSON200.Items[0].HasAttachments {
		t.Fatalf("user2's mail: %s", lm.Body)
	}

	dg, err := c.DeleteGroupWithResponse(ctx, "team@shop.example")
	check(t, "delete group", dg, err, 204)
	for i := 0; i < 5; i++ {
		du, err := c.DeleteUserWithResponse(ctx, openapi_types.Email(fmt.Sprintf("user%d@shop.example", i)))
		check(t, "delete user", du, err, 204)
	}
	dd, err := c.DeleteDomainWithResponse(ctx, "shop.example", nil)
	check(t, "delete domain", dd, err, 204)
	gone, err := c.GetDomainWithResponse(ctx, "shop.example")
	check(t, "get deleted domain", gone, err, 404)
	if gone.JSON404 == nil {
		t.Fatalf("404 without envelope: %s", gone.Body)
	}
}
