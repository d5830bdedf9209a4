package queue

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultLifetime is how long an undeliverable message is retried before it
// bounces when MAILGATE_QUEUE_LIFETIME is not set (RFC 5321 §4.5.4.1 asks for
// at least 4–5 days).
const DefaultLifetime = 5 * 24 * time.Hour

// ParseLifetime reads MAILGATE_QUEUE_LIFETIME: a Go duration ("120h",
// "90m") or a whole number of days ("5d"); "" is DefaultLifetime. The value
// goes to delivery.Options.QueueLifetime, which stamps each queued entry.
func ParseLifetime(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return DefaultLifetime, nil
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n > 10000 {
			return 0, fmt.Errorf("queue lifetime %q: want a duration such as 120h or a number of days such as 5d", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("queue lifetime %q: want a duration such as 120h or a number of days such as 5d", s)
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("queue lifetime %q must be positive", s)
	}
	return d, nil
}
