package models

import (
	"context"
	"fmt"
)

// The batch queries below serve list endpoints: one query per page, not per row.

// DomainCountsOf tells how many users and groups each domain holds.
func (s *Store) DomainCountsOf(ctx context.Context, ids []int64) (map[int64]DomainCounts, error) {
	out := make(map[int64]DomainCounts, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	var rows []struct {
		DomainID int64
		Kind     string
		N        int64
	}
	err := s.conn(ctx).Raw(`SELECT domain_id, kind, count(*) AS n FROM addresses WHERE domain_id IN ? GROUP BY domain_id, kind`, ids).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("count addresses of %d domains: %w", len(ids), translate(err))
	}
	for _, r := range rows {
		c := out[r.DomainID]
		if r.Kind == "user" {
			c.Users = r.N
		} else {
			c.Groups = r.N
		}
		out[r.DomainID] = c
	}
	return out, nil
}

// UsageOf tells how many bytes of mail each user holds.
func (s *Store) UsageOf(ctx context.Context, userIDs []int64) (map[int64]int64, error) {
	out := make(map[int64]int64, len(userIDs))
	if len(userIDs) == 0 {
		return out, nil
	}
	var rows []struct {
		UserID int64
		Used   int64
	}
	err := s.conn(ctx).Raw(`SELECT user_id, coalesce(sum(size_bytes), 0) AS used FROM mailboxes WHERE user_id IN ? GROUP BY user_id`, userIDs).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("usage of %d users: %w", len(userIDs), translate(err))
	}
	for _, r := range rows {
		out[r.UserID] = r.Used
	}
	return out, nil
}

// MembersOf lists the member addresses of each group, in address order.
func (s *Store) MembersOf(ctx context.Context, groupIDs []int64) (map[int64][]string, error) {
	out := make(map[int64][]string, len(groupIDs))
	if len(groupIDs) == 0 {
		return out, nil
	}
	var rows []struct {
		GroupID int64
		Email   string
	}
	err := s.conn(ctx).Raw(`SELECT m.group_id, u.email FROM group_members m JOIN users u ON u.id = m.user_id
		WHERE m.group_id IN ? ORDER BY m.group_id, u.email`, groupIDs).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("members of %d groups: %w", len(groupIDs), translate(err))
	}
	for _, r := range rows {
		out[r.GroupID] = append(out[r.GroupID], r.Email)
	}
	return out, nil
}
