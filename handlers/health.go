package handlers

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// Status is the body of the health endpoints.
type Status struct {
	Status string `json:"status" example:"ok" binding:"required"`
} //@name Status

// Health godoc
//
//	@ID			health
//	@Summary	Liveness: the process is up
//	@Tags		health
//	@Produce	json
//	@Success	200	{object}	Status
//	@Router		/healthz [get]
func (h *Handlers) Health(c *gin.Context) error {
	c.JSON(http.StatusOK, Status{Status: "ok"})
	return nil
}

// Ready godoc
//
//	@ID			ready
//	@Summary	Readiness: the database answers
//	@Tags		health
//	@Produce	json
//	@Success	200	{object}	Status
//	@Failure	503	{object}	ErrorEnvelope	"The database does not answer"
//	@Router		/readyz [get]
func (h *Handlers) Ready(c *gin.Context) error {
	ctx, cancel := context.WithTimeout(ctxOf(c), 2*time.Second)
	defer cancel()
	if err := h.store.Ping(ctx); err != nil {
		c.Error(err) //nolint:errcheck // for the access log
		return Errorf(http.StatusServiceUnavailable, CodeUnavailable, "database unavailable")
	}
	c.JSON(http.StatusOK, Status{Status: "ok"})
	return nil
}

// Metrics godoc
//
//	@ID				metrics
//	@Summary		Prometheus metrics
//	@Description	Requests by route and status, latency, and the counters of the mail front ends, in the Prometheus text format.
//	@Tags			health
//	@Produce		plain
//	@Success		200	{string}	string	"Prometheus text exposition format"
//	@Router			/metrics [get]
func (h *Handlers) Metrics(c *gin.Context) error {
	if h.metrics == nil {
		return Errorf(http.StatusNotFound, CodeNotFound, "metrics are not enabled")
	}
	h.metrics.ServeHTTP(c.Writer, c.Request)
	return nil
}

// OpenAPI godoc
//
//	@ID			getOpenAPI
//	@Summary	This API's OpenAPI 3.0 document
//	@Tags		health
//	@Produce	application/yaml
//	@Success	200	{string}	string	"openapi.yaml"
//	@Router		/openapi.yaml [get]
func (h *Handlers) OpenAPI(c *gin.Context) error {
	c.Data(http.StatusOK, "application/yaml", h.openapi)
	return nil
}
