package imap

// DistrustLoopback makes the server treat every peer as remote, so tests on
// 127.0.0.1 can see what a client on another host sees before TLS.
func DistrustLoopback(s *Server) { s.distrustLoopback.Store(true) }
