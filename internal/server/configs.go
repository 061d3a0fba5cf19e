package server

import "github.com/latch-lb/latch/internal/config"

// Configs returns, as one consistent pair, the config file's content as
// last applied and the running config (the file with the runtime changes
// made since), and the version of the latter (Snapshot's Version): what
// the admin API's diff compares. Both are shared: read them, never change
// them. Before the first Apply both are nil.
func (s *Server) Configs() (file, running *config.Config, version uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.file, s.running, s.version
}
