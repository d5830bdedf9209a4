package handlers

import (
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/mailgate/mailgate/models"
	"github.com/mailgate/mailgate/protocol/auth"
)

// CreateUserRequest describes a new user.
type CreateUserRequest struct {
	Email       string `json:"email" format:"email" example:"alice@example.com" binding:"required"`
	Password    string `json:"password" minLength:"8" maxLength:"72" example:"s3cret-passw0rd" binding:"required"`
	DisplayName string `json:"display_name" example:"Alice Liddell"`
	Role        string `json:"role" enums:"user,admin" default:"user"`
	// Storage limit in bytes; 0 or absent means no limit.
	QuotaBytes int64 `json:"quota_bytes" minimum:"0" example:"1073741824"`
} //@name CreateUserRequest

// UpdateUserRequest changes a user; absent fields stay as they are. A user who is
// not an admin may change only its own display_name and password, and must give
// current_password to change the password. Changing the password or disabling the
// user ends every token issued to it before.
type UpdateUserRequest struct {
	DisplayName     *string `json:"display_name,omitempty" example:"Alice L."`
	Password        *string `json:"password,omitempty" minLength:"8" maxLength:"72" example:"n3w-passw0rd"`
	CurrentPassword *string `json:"current_password,omitempty" example:"s3cret-passw0rd"`
	Role            *string `json:"role,omitempty" enums:"user,admin"`
	QuotaBytes      *int64  `json:"quota_bytes,omitempty" minimum:"0"`
	Disabled        *bool   `json:"disabled,omitempty"`
} //@name UpdateUserRequest

// ListUsers godoc
//
//	@ID			listUsers
//	@Summary	List users
//	@Tags		users
//	@Produce	json
//	@Param		domain	query		string	false	"Only users of this domain"
//	@Param		limit	query		int		false	"Page size (1-200)"	minimum(1)	maximum(200)	default(50)
//	@Param		cursor	query		string	false	"next_cursor of the previous page"
//	@Success	200		{object}	UserPage
//	@Failure	400		{object}	ErrorEnvelope	"Bad limit or cursor"
//	@Failure	401		{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure	403		{object}	ErrorEnvelope	"Not an admin"
//	@Failure	404		{object}	ErrorEnvelope	"No such domain"
//	@Failure	429		{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Security	BearerAuth
//	@Router		/api/v1/users [get]
func (h *Handlers) ListUsers(c *gin.Context) error {
	p, err := h.pageParams(c, "users:"+c.Query("domain"))
	if err != nil {
		return err
	}
	us, next, err := h.store.ListUsers(ctxOf(c), c.Query("domain"), p)
	if err != nil {
		return err
	}
	ids := make([]int64, len(us))
	for i := range us {
		ids[i] = us[i].ID
	}
	used, err := h.store.UsageOf(ctxOf(c), ids)
	if err != nil {
		return err
	}
	page := UserPage{Items: make([]User, 0, len(us)), NextCursor: h.nextCursor("users:"+c.Query("domain"), next)}
	for i := range us {
		page.Items = append(page.Items, userDTO(&us[i], used[us[i].ID]))
	}
	c.JSON(http.StatusOK, page)
	return nil
}

// CreateUser godoc
//
//	@ID				createUser
//	@Summary		Create a user
//	@Description	The address's domain must exist. The user gets the mailboxes INBOX, Sent, Drafts, Trash and Junk.
//	@Tags			users
//	@Accept			json
//	@Produce		json
//	@Param			body	body		CreateUserRequest	true	"The new user"
//	@Success		201		{object}	User
//	@Failure		400		{object}	ErrorEnvelope	"Invalid field (named in the message)"
//	@Failure		401		{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure		403		{object}	ErrorEnvelope	"Not an admin"
//	@Failure		409		{object}	ErrorEnvelope	"The address is taken by a user or group"
//	@Failure		413		{object}	ErrorEnvelope	"Body too large"
//	@Failure		415		{object}	ErrorEnvelope	"Body is not JSON"
//	@Failure		429		{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Security		BearerAuth
//	@Router			/api/v1/users [post]
func (h *Handlers) CreateUser(c *gin.Context) error {
	var req CreateUserRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	if strings.TrimSpace(req.Email) == "" {
		return required("email")
	}
	if _, err := models.NormalizeEmail(req.Email); err != nil {
		return models.Invalid("email", err.Error())
	}
	if req.Password == "" {
		return required("password")
	}
	hash, err := auth.HashPassword(req.Password)
	if err != nil {
		return err
	}
	u, err := h.store.CreateUser(ctxOf(c), models.NewUser{Email: req.Email, PasswordHash: hash, DisplayName: req.DisplayName,
		Role: req.Role, QuotaBytes: req.QuotaBytes})
	if err != nil {
		return err
	}
	c.Header("Location", "/api/v1/users/"+u.Email)
	c.JSON(http.StatusCreated, userDTO(u, 0))
	return nil
}

// GetUser godoc
//
//	@ID				getUser
//	@Summary		Get a user
//	@Description	Admins may read any user; a user may read itself.
//	@Tags			users
//	@Produce		json
//	@Param			email	path		string	true	"The user's address"	format(email)
//	@Success		200		{object}	User
//	@Failure		401		{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure		403		{object}	ErrorEnvelope	"Another user, and not an admin"
//	@Failure		404		{object}	ErrorEnvelope	"No such user"
//	@Failure		429		{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Security		BearerAuth
//	@Router			/api/v1/users/{email} [get]
func (h *Handlers) GetUser(c *gin.Context) error {
	u, err := h.userFor(c)
	if err != nil {
		return err
	}
	used, err := h.store.UsedBytes(ctxOf(c), u.ID)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, userDTO(u, used))
	return nil
}

// userFor loads the user named in the path, if the caller may see it.
func (h *Handlers) userFor(c *gin.Context) (*models.User, error) {
	me := CurrentUser(c)
	u, err := h.store.GetUser(ctxOf(c), c.Param("email"))
	if err != nil {
		if me.IsAdmin() {
			return nil, err
		}
		return nil, Errorf(http.StatusForbidden, CodeForbidden, "you may only see your own user")
	}
	if !me.IsAdmin() && u.ID != me.ID {
		return nil, Errorf(http.StatusForbidden, CodeForbidden, "you may only see your own user")
	}
	return u, nil
}

// UpdateUser godoc
//
//	@ID				updateUser
//	@Summary		Change a user
//	@Description	Admins may change any field of any user. A user may change its own display_name, and its own password by giving current_password. Changing the password or disabling the user ends the user's earlier tokens.
//	@Tags			users
//	@Accept			json
//	@Produce		json
//	@Param			email	path		string				true	"The user's address"	format(email)
//	@Param			body	body		UpdateUserRequest	true	"Fields to change"
//	@Success		200		{object}	User
//	@Failure		400		{object}	ErrorEnvelope	"Invalid field (named in the message)"
//	@Failure		401		{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure		403		{object}	ErrorEnvelope	"Not allowed to change this user or field"
//	@Failure		404		{object}	ErrorEnvelope	"No such user"
//	@Failure		409		{object}	ErrorEnvelope	"Would leave no enabled admin"
//	@Failure		413		{object}	ErrorEnvelope	"Body too large"
//	@Failure		415		{object}	ErrorEnvelope	"Body is not JSON"
//	@Failure		429		{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Security		BearerAuth
//	@Router			/api/v1/users/{email} [patch]
func (h *Handlers) UpdateUser(c *gin.Context) error {
	var req UpdateUserRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	u, err := h.userFor(c)
	if err != nil {
		return err
	}
	me := CurrentUser(c)
	if !me.IsAdmin() && (req.Role != nil || req.QuotaBytes != nil || req.Disabled != nil) {
		return Errorf(http.StatusForbidden, CodeForbidden, "only an admin may change role, quota_bytes or disabled")
	}
	patch := models.UserPatch{DisplayName: req.DisplayName, Role: req.Role, QuotaBytes: req.QuotaBytes, Disabled: req.Disabled}
	if req.Password != nil {
		if u.ID == me.ID {
			if req.CurrentPassword == nil {
				return models.Invalid("current_password", "is required to change your own password")
			}
			if _, err := h.auth.Check(ctxOf(c), me.Email, *req.CurrentPassword, c.ClientIP()); err != nil {
				if errors.Is(err, auth.ErrFailed) {
					return models.Invalid("current_password", "is not your current password")
				}
				return err // the login budget (429), or the store
			}
		}
		hash, err := auth.HashPassword(*req.Password)
		if err != nil {
			return err
		}
		patch.PasswordHash = &hash
	}
	u, err = h.store.UpdateUser(ctxOf(c), u.Email, patch)
	if err != nil {
		return err
	}
	used, err := h.store.UsedBytes(ctxOf(c), u.ID)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, userDTO(u, used))
	return nil
}

// DeleteUser godoc
//
//	@ID				deleteUser
//	@Summary		Delete a user
//	@Description	Deletes the user with all its mailboxes and mail, and takes it out of its groups.
//	@Tags			users
//	@Param			email	path	string	true	"The user's address"	format(email)
//	@Success		204
//	@Failure		401	{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure		403	{object}	ErrorEnvelope	"Not an admin"
//	@Failure		404	{object}	ErrorEnvelope	"No such user"
//	@Failure		409	{object}	ErrorEnvelope	"The last enabled admin"
//	@Failure		429	{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Security		BearerAuth
//	@Router			/api/v1/users/{email} [delete]
func (h *Handlers) DeleteUser(c *gin.Context) error {
	if err := h.store.DeleteUser(ctxOf(c), c.Param("email")); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}
