package handlers

import (
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/mailgate/mailgate/models"
)

// CreateGroupRequest describes a new group.
type CreateGroupRequest struct {
	Email string `json:"email" format:"email" example:"team@example.com" binding:"required"`
	Name  string `json:"name" example:"The team"`
	// Addresses of users of this server (any domain).
	Members []string `json:"members" example:"alice@example.com,bob@example.com"`
} //@name CreateGroupRequest

// UpdateGroupRequest changes a group; members, when present, replaces the member list.
type UpdateGroupRequest struct {
	Name    *string  `json:"name,omitempty" example:"Team A"`
	Members []string `json:"members,omitempty" example:"alice@example.com"`
} //@name UpdateGroupRequest

// ListGroups godoc
//
//	@ID			listGroups
//	@Summary	List groups
//	@Tags		groups
//	@Produce	json
//	@Param		domain	query		string	false	"Only groups of this domain"
//	@Param		limit	query		int		false	"Page size (1-200)"	minimum(1)	maximum(200)	default(50)
//	@Param		cursor	query		string	false	"next_cursor of the previous page"
//	@Success	200		{object}	GroupPage
//	@Failure	400		{object}	ErrorEnvelope	"Bad limit or cursor"
//	@Failure	401		{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure	403		{object}	ErrorEnvelope	"Not an admin"
//	@Failure	404		{object}	ErrorEnvelope	"No such domain"
//	@Failure	429		{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Security	BearerAuth
//	@Router		/api/v1/groups [get]
func (h *Handlers) ListGroups(c *gin.Context) error {
	scope := "groups:" + c.Query("domain")
	p, err := h.pageParams(c, scope)
	if err != nil {
		return err
	}
	gs, next, err := h.store.ListGroups(ctxOf(c), c.Query("domain"), p)
	if err != nil {
		return err
	}
	ids := make([]int64, len(gs))
	for i := range gs {
		ids[i] = gs[i].ID
	}
	members, err := h.store.MembersOf(ctxOf(c), ids)
	if err != nil {
		return err
	}
	page := GroupPage{Items: make([]Group, 0, len(gs)), NextCursor: h.nextCursor(scope, next)}
	for i := range gs {
		page.Items = append(page.Items, groupDTO(&gs[i], members[gs[i].ID]))
	}
	c.JSON(http.StatusOK, page)
	return nil
}

// CreateGroup godoc
//
//	@ID				createGroup
//	@Summary		Create a group
//	@Description	Mail to the group's address reaches every member. The address's domain must exist, and no user may have it.
//	@Tags			groups
//	@Accept			json
//	@Produce		json
//	@Param			body	body		CreateGroupRequest	true	"The new group"
//	@Success		201		{object}	Group
//	@Failure		400		{object}	ErrorEnvelope	"Invalid field, or a member that is not a user here"
//	@Failure		401		{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure		403		{object}	ErrorEnvelope	"Not an admin"
//	@Failure		409		{object}	ErrorEnvelope	"The address is taken by a user or group"
//	@Failure		413		{object}	ErrorEnvelope	"Body too large"
//	@Failure		415		{object}	ErrorEnvelope	"Body is not JSON"
//	@Failure		429		{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Security		BearerAuth
//	@Router			/api/v1/groups [post]
func (h *Handlers) CreateGroup(c *gin.Context) error {
	var req CreateGroupRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	if strings.TrimSpace(req.Email) == "" {
		return required("email")
	}
	g, us, err := h.store.CreateGroup(ctxOf(c), req.Email, req.Name, req.Members)
	if err != nil {
		return err
	}
	c.Header("Location", "/api/v1/groups/"+g.Email)
	c.JSON(http.StatusCreated, groupDTO(g, emails(us)))
	return nil
}

func emails(us []models.User) []string {
	out := make([]string, len(us))
	for i := range us {
		out[i] = us[i].Email
	}
	return out
}

// GetGroup godoc
//
//	@ID			getGroup
//	@Summary	Get a group
//	@Tags		groups
//	@Produce	json
//	@Param		email	path		string	true	"The group's address"	format(email)
//	@Success	200		{object}	Group
//	@Failure	401		{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure	403		{object}	ErrorEnvelope	"Not an admin"
//	@Failure	404		{object}	ErrorEnvelope	"No such group"
//	@Failure	429		{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Security	BearerAuth
//	@Router		/api/v1/groups/{email} [get]
func (h *Handlers) GetGroup(c *gin.Context) error {
	g, err := h.store.GetGroup(ctxOf(c), c.Param("email"))
	if err != nil {
		return err
	}
	us, err := h.store.GroupMembers(ctxOf(c), g.ID)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, groupDTO(g, emails(us)))
	return nil
}

// UpdateGroup godoc
//
//	@ID			updateGroup
//	@Summary	Change a group
//	@Tags		groups
//	@Accept		json
//	@Produce	json
//	@Param		email	path		string				true	"The group's address"	format(email)
//	@Param		body	body		UpdateGroupRequest	true	"Fields to change"
//	@Success	200		{object}	Group
//	@Failure	400		{object}	ErrorEnvelope	"Invalid field, or a member that is not a user here"
//	@Failure	401		{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure	403		{object}	ErrorEnvelope	"Not an admin"
//	@Failure	404		{object}	ErrorEnvelope	"No such group"
//	@Failure	413		{object}	ErrorEnvelope	"Body too large"
//	@Failure	415		{object}	ErrorEnvelope	"Body is not JSON"
//	@Failure	429		{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Security	BearerAuth
//	@Router		/api/v1/groups/{email} [patch]
func (h *Handlers) UpdateGroup(c *gin.Context) error {
	var req UpdateGroupRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	g, us, err := h.store.UpdateGroup(ctxOf(c), c.Param("email"), req.Name, req.Members)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, groupDTO(g, emails(us)))
	return nil
}

// DeleteGroup godoc
//
//	@ID				deleteGroup
//	@Summary		Delete a group
//	@Description	Its members stay, with their mail.
//	@Tags			groups
//	@Param			email	path	string	true	"The group's address"	format(email)
//	@Success		204
//	@Failure		401	{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure		403	{object}	ErrorEnvelope	"Not an admin"
//	@Failure		404	{object}	ErrorEnvelope	"No such group"
//	@Failure		429	{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Security		BearerAuth
//	@Router			/api/v1/groups/{email} [delete]
func (h *Handlers) DeleteGroup(c *gin.Context) error {
	if err := h.store.DeleteGroup(ctxOf(c), c.Param("email")); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}

// ListGroupMembers godoc
//
//	@ID			listGroupMembers
//	@Summary	List a group's members
//	@Tags		groups
//	@Produce	json
//	@Param		email	path		string	true	"The group's address"	format(email)
//	@Success	200		{object}	MemberList
//	@Failure	401		{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure	403		{object}	ErrorEnvelope	"Not an admin"
//	@Failure	404		{object}	ErrorEnvelope	"No such group"
//	@Failure	429		{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Security	BearerAuth
//	@Router		/api/v1/groups/{email}/members [get]
func (h *Handlers) ListGroupMembers(c *gin.Context) error {
	g, err := h.store.GetGroup(ctxOf(c), c.Param("email"))
	if err != nil {
		return err
	}
	us, err := h.store.GroupMembers(ctxOf(c), g.ID)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, MemberList{Items: emails(us)})
	return nil
}

// AddGroupMember godoc
//
//	@ID				addGroupMember
//	@Summary		Add a member
//	@Description	Idempotent: adding a member twice is no error.
//	@Tags			groups
//	@Produce		json
//	@Param			email	path		string	true	"The group's address"	format(email)
//	@Param			member	path		string	true	"A user's address"		format(email)
//	@Success		200		{object}	MemberList
//	@Failure		401		{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure		403		{object}	ErrorEnvelope	"Not an admin"
//	@Failure		404		{object}	ErrorEnvelope	"No such group or user"
//	@Failure		429		{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Security		BearerAuth
//	@Router			/api/v1/groups/{email}/members/{member} [put]
func (h *Handlers) AddGroupMember(c *gin.Context) error {
	if err := h.store.AddMember(ctxOf(c), c.Param("email"), c.Param("member")); err != nil {
		return err
	}
	return h.ListGroupMembers(c)
}

// RemoveGroupMember godoc
//
//	@ID			removeGroupMember
//	@Summary	Remove a member
//	@Tags		groups
//	@Param		email	path	string	true	"The group's address"	format(email)
//	@Param		member	path	string	true	"A member's address"	format(email)
//	@Success	204
//	@Failure	401	{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure	403	{object}	ErrorEnvelope	"Not an admin"
//	@Failure	404	{object}	ErrorEnvelope	"No such group, user or membership"
//	@Failure	429	{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Security	BearerAuth
//	@Router		/api/v1/groups/{email}/members/{member} [delete]
func (h *Handlers) RemoveGroupMember(c *gin.Context) error {
	if err := h.store.RemoveMember(ctxOf(c), c.Param("email"), c.Param("member")); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}
