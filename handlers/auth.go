package handlers

import (
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/mailgate/mailgate/protocol/auth"
)

// LoginRequest holds credentials.
type LoginRequest struct {
	Email    string `json:"email" format:"email" example:"admin@localhost" binding:"required"`
	Password string `json:"password" example:"correct horse battery staple" binding:"required"`
} //@name LoginRequest

// Token carries a bearer token.
type Token struct {
	AccessToken string `json:"access_token" example:"eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9…" binding:"required"`
	TokenType   string `json:"token_type" enums:"Bearer" example:"Bearer" binding:"required"`
	// Seconds until the token expires.
	ExpiresIn int64 `json:"expires_in" example:"3600" binding:"required"`
	User      User  `json:"user" binding:"required"`
} //@name Token

// Login godoc
//
//	@ID				login
//	@Summary		Log in
//	@Description	Exchanges an address and password for a bearer token (HS256 JWT). A wrong password, an unknown user and a disabled user all get the same 401. Repeated failures from one client are answered more and more slowly, and too many attempts get 429.
//	@Tags			auth
//	@Accept			json
//	@Produce		json
//	@Param			body	body		LoginRequest	true	"Credentials"
//	@Success		200		{object}	Token
//	@Failure		400		{object}	ErrorEnvelope	"Malformed or incomplete body"
//	@Failure		401		{object}	ErrorEnvelope	"Wrong credentials"
//	@Failure		413		{object}	ErrorEnvelope	"Body too large"
//	@Failure		415		{object}	ErrorEnvelope	"Body is not JSON"
//	@Failure		429		{object}	ErrorEnvelope	"Too many attempts; see Retry-After"
//	@Failure		503		{object}	ErrorEnvelope	"Database unavailable"
//	@Router			/api/v1/auth/login [post]
func (h *Handlers) Login(c *gin.Context) error {
	var req LoginRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	if strings.TrimSpace(req.Email) == "" {
		return required("email")
	}
	if req.Password == "" {
		return required("password")
	}
	u, err := h.auth.Check(ctxOf(c), req.Email, req.Password, c.ClientIP())
	if retry := auth.RetryAfter(err); retry > 0 {
		c.Header("Retry-After", strconv.Itoa(int(math.Ceil(retry.Seconds()))))
	}
	if err != nil {
		return err
	}
	tok, ttl, err := h.tokens.Issue(u)
	if err != nil {
		return err
	}
	used, err := h.store.UsedBytes(ctxOf(c), u.ID)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, Token{AccessToken: tok, TokenType: "Bearer", ExpiresIn: int64(ttl.Seconds()), User: userDTO(u, used)})
	return nil
}

// Me godoc
//
//	@ID			getMe
//	@Summary	The authenticated user
//	@Tags		auth
//	@Produce	json
//	@Success	200	{object}	User
//	@Failure	401	{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure	429	{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Security	BearerAuth
//	@Router		/api/v1/me [get]
func (h *Handlers) Me(c *gin.Context) error {
	u := CurrentUser(c)
	used, err := h.store.UsedBytes(ctxOf(c), u.ID)
	if err != nil {
		return err
	}
	c.JSON(http.StatusOK, userDTO(u, used))
	return nil
}
