package models

// StoreGoroutines tells how many goroutines the store owns that have not ended
// yet (group committers, the PostgreSQL listener).
func StoreGoroutines(s *Store) int { return int(s.shared.goroutines.Load()) }

// StoreRunning tells whether Run has started the committers and not yet begun
// shutting down.
func StoreRunning(s *Store) bool {
	s.shared.deliverMu.RLock()
	defer s.shared.deliverMu.RUnlock()
	return s.shared.state == stateRunning
}
