package handlers

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/mailgate/mailgate/models"
)

// CreateDomainRequest describes a new domain.
type CreateDomainRequest struct {
	// Any case; internationalized names are stored as IDNA A-labels (xn--…).
	Name        string `json:"name" example:"example.com" binding:"required"`
	Description string `json:"description" example:"Main office"`
} //@name CreateDomainRequest

// UpdateDomainRequest changes a domain; absent fields stay as they are. A disabled
// domain keeps its users and mail but refuses incoming mail for its addresses.
type UpdateDomainRequest struct {
	Description *string `json:"description,omitempty" example:"Head office"`
	Disabled    *bool   `json:"disabled,omitempty" example:"false"`
} //@name UpdateDomainRequest

// ListDomains godoc
//
//	@ID			listDomains
//	@Summary	List domains
//	@Tags		domains
//	@Produce	json
//	@Param		limit	query		int		false	"Page size (1-200)"	minimum(1)	maximum(200)	default(50)
//	@Param		cursor	query		string	false	"next_cursor of the previous page"
//	@Success	200		{object}	DomainPage
//	@Failure	400		{object}	ErrorEnvelope	"Bad limit or cursor"
//	@Failure	401		{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure	403		{object}	ErrorEnvelope	"Not an admin"
//	@Failure	429		{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Security	BearerAuth
//	@Router		/api/v1/domains [get]
func (h *Handlers) ListDomains(c *gin.Context) error {
	p, err := h.pageParams(c, "domains")
	if err != nil {
		return err
	}
	ds, next, err := h.store.ListDomains(ctxOf(c), p)
	if err != nil {
		return err
	}
	ids := make([]int64, len(ds))
	for i := range ds {
		ids[i] = ds[i].ID
	}
	counts, err := h.store.DomainCountsOf(ctxOf(c), ids)
	if err != nil {
		return err
	}
	page := DomainPage{Items: make([]Domain, 0, len(ds)), NextCursor: h.nextCursor("domains", next)}
	for i := range ds {
		page.Items = append(page.Items, domainDTO(&ds[i], counts[ds[i].ID]))
	}
	c.JSON(http.StatusOK, page)
	return nil
}

// CreateDomain godoc
//
//	@ID			createDomain
//	@Summary	Create a domain
//	@Tags		domains
//	@Accept		json
//	@Produce	json
//	@Param		body	body		CreateDomainRequest	true	"The new domain"
//	@Success	201		{object}	Domain
//	@Failure	400		{object}	ErrorEnvelope	"Invalid name"
//	@Failure	401		{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure	403		{object}	ErrorEnvelope	"Not an admin"
//	@Failure	409		{object}	ErrorEnvelope	"The domain exists (names compare without case)"
//	@Failure	413		{object}	ErrorEnvelope	"Body too large"
//	@Failure	415		{object}	ErrorEnvelope	"Body is not JSON"
//	@Failure	429		{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Security	BearerAuth
//	@Router		/api/v1/domains [post]
func (h *Handlers) CreateDomain(c *gin.Context) error {
	var req CreateDomainRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	if strings.TrimSpace(req.Name) == "" {
		return required("name")
	}
	d, err := h.store.CreateDomain(ctxOf(c), req.Name, req.Description)
	if err != nil {
		return err
	}
	c.Header("Location", "/api/v1/domains/"+d.Name)
	c.JSON(http.StatusCreated, domainDTO(d, models.DomainCounts{}))
	return nil
}

// GetDomain godoc
//
//	@ID			getDomain
//	@Summary	Get a domain
//	@Tags		domains
//	@Produce	json
//	@Param		domain	path		string	true	"Domain name"
//	@Success	200		{object}	Domain
//	@Failure	401		{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure	403		{object}	ErrorEnvelope	"Not an admin"
//	@Failure	404		{object}	ErrorEnvelope	"No such domain"
//	@Failure	429		{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Security	BearerAuth
//	@Router		/api/v1/domains/{domain} [get]
func (h *Handlers) GetDomain(c *gin.Context) error {
	d, err := h.store.GetDomain(ctxOf(c), c.Param("domain"))
	if err != nil {
		return err
	}
	return h.writeDomain(c, http.StatusOK, d)
}

func (h *Handlers) writeDomain(c *gin.Context, st int, d *models.Domain) error {
	counts, err := h.store.CountDomain(ctxOf(c), d.ID)
	if err != nil {
		return err
	}
	c.JSON(st, domainDTO(d, counts))
	return nil
}

// UpdateDomain godoc
//
//	@ID			updateDomain
//	@Summary	Change a domain
//	@Tags		domains
//	@Accept		json
//	@Produce	json
//	@Param		domain	path		string				true	"Domain name"
//	@Param		body	body		UpdateDomainRequest	true	"Fields to change"
//	@Success	200		{object}	Domain
//	@Failure	400		{object}	ErrorEnvelope	"Invalid field"
//	@Failure	401		{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure	403		{object}	ErrorEnvelope	"Not an admin"
//	@Failure	404		{object}	ErrorEnvelope	"No such domain"
//	@Failure	413		{object}	ErrorEnvelope	"Body too large"
//	@Failure	415		{object}	ErrorEnvelope	"Body is not JSON"
//	@Failure	429		{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Security	BearerAuth
//	@Router		/api/v1/domains/{domain} [patch]
func (h *Handlers) UpdateDomain(c *gin.Context) error {
	var req UpdateDomainRequest
	if err := bindJSON(c, &req); err != nil {
		return err
	}
	d, err := h.store.UpdateDomain(ctxOf(c), c.Param("domain"), models.DomainPatch{Description: req.Description, Disabled: req.Disabled})
	if err != nil {
		return err
	}
	return h.writeDomain(c, http.StatusOK, d)
}

// DeleteDomain godoc
//
//	@ID				deleteDomain
//	@Summary		Delete a domain
//	@Description	A domain that still has users or groups is 409 unless force=true; then its users (with their mail) and groups go with it.
//	@Tags			domains
//	@Param			domain	path	string	true	"Domain name"
//	@Param			force	query	bool	false	"Also delete its users and groups"
//	@Success		204
//	@Failure		400	{object}	ErrorEnvelope	"Bad force value"
//	@Failure		401	{object}	ErrorEnvelope	"Missing, invalid or expired token"
//	@Failure		403	{object}	ErrorEnvelope	"Not an admin"
//	@Failure		404	{object}	ErrorEnvelope	"No such domain"
//	@Failure		409	{object}	ErrorEnvelope	"The domain still has users or groups, or holds the last admin"
//	@Failure		429	{object}	ErrorEnvelope	"Too many requests; see Retry-After"
//	@Security		BearerAuth
//	@Router			/api/v1/domains/{domain} [delete]
func (h *Handlers) DeleteDomain(c *gin.Context) error {
	force := false
	if v := c.Query("force"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return models.Invalid("force", "must be true or false")
		}
		force = b
	}
	if err := h.store.DeleteDomain(ctxOf(c), c.Param("domain"), force); err != nil {
		return err
	}
	c.Status(http.StatusNoContent)
	return nil
}
