package smtp

// TreatLoopbackAsRemote makes s apply the AUTH-over-TLS rule to loopback peers
// too, so tests on 127.0.0.1 see what a remote client sees. Call before Serve.
func TreatLoopbackAsRemote(s *Server) { s.loopbackIsRemote = true }
