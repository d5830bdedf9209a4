package auth

import (
	"context"
	"errors"
	"time"

	"github.com/mailgate/mailgate/models"
)

// Reasons a session's credentials stop being valid.
const (
	RevokedDeleted  = "user deleted"
	RevokedDisabled = "user disabled"
	RevokedChanged  = "credentials changed"
)

// watchRetry is how soon a check that the store could not answer is tried
// again.
const watchRetry = time.Second

// WatchUser calls revoked, once and in a goroutine of its own, when the
// session of u (as it logged in) may no longer go on: the user was deleted or
// disabled or its password changed, on this instance or any other sharing the
// database. It stops watching when ctx ends or after calling revoked.
//
// A notice on the user's topic only says "check again": the user is read back
// from the store and compared with u, so a lost or merged notice costs
// latency, never a wrong verdict.
func (a *Authenticator) WatchUser(ctx context.Context, u *models.User, revoked func(reason string)) {
	ch, unsubscribe := a.store.Subscribe(models.UserTopic(u.ID))
	go func() {
		defer unsubscribe()
		for {
			// The first check covers a change between the login and Subscribe.
			reason, err := a.stillValid(ctx, u)
			var retry <-chan time.Time
			switch {
			case err != nil && ctx.Err() != nil:
				return
			case err != nil:
				a.opt.Logger.Warn("check a session's credentials", "user", u.Email, "err", err)
				retry = time.After(watchRetry)
			case reason != "":
				a.opt.Logger.Info("credentials revoked; ending session", "user", u.Email, "reason", reason)
				revoked(reason)
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-ch:
			case <-retry:
			}
		}
	}()
}

// stillValid tells why u's session must end, or "" if it may go on.
func (a *Authenticator) stillValid(ctx context.Context, u *models.User) (string, error) {
	cur, err := a.store.GetUserByID(ctx, u.ID)
	switch {
	case errors.Is(err, models.ErrNotFound):
		return RevokedDeleted, nil
	case err != nil:
		return "", err
	case cur.Disabled:
		return RevokedDisabled, nil
	case cur.TokenVersion != u.TokenVersion || cur.PasswordHash != u.PasswordHash:
		return RevokedChanged, nil
	}
	return "", nil
}
