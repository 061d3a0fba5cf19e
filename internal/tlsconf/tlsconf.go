// Package tlsconf is the TLS side of latch's HTTPS listeners: certificates
// chosen by SNI, ALB's security policies, and settings swapped on reload
// without touching established connections.
package tlsconf

import (
	"crypto/tls"
	"sync/atomic"
)

// Settings are what an HTTPS listener's handshakes use.
type Settings struct {
	Certificates *Store
	Policy       Policy
	// HTTP2 offers h2 in ALPN, before http/1.1 (ALB's routing.http2.enabled).
	HTTP2 bool
}

// Server is the TLS configuration of one HTTPS listener. Every accepted
// connection is wrapped with Config(), whose GetConfigForClient reads the
// current settings at each handshake: Update changes certificates, policy
// and ALPN for the handshakes that follow, while established connections
// keep what they negotiated.
//
// Session tickets are on, with Go's automatic keys: made at random on first
// use, rotated daily, and accepted for seven days. They belong to the
// Server, not to its settings, so that a reload does not cost every client
// a full handshake; they are not shared between processes, so a restart
// does (as ALB, which resumes sessions only on the same node).
type Server struct {
	base tls.Config
	cur  atomic.Pointer[tls.Config]
}

// NewServer returns a Server with the given settings.
func NewServer(s Settings) *Server {
	srv := &Server{}
	srv.base.GetConfigForClient = srv.configForClient
	srv.Update(s)
	return srv
}

func (srv *Server) configForClient(*tls.ClientHelloInfo) (*tls.Config, error) {
	return srv.cur.Load(), nil
}

// Config is the configuration to give tls.Server. It holds the session
// ticket keys; each handshake then runs with the current settings.
func (srv *Server) Config() *tls.Config { return &srv.base }

// Update swaps in new settings for the handshakes that follow.
func (srv *Server) Update(s Settings) {
	protos := []string{"http/1.1"}
	if s.HTTP2 {
		protos = []string{"h2", "http/1.1"}
	}
	srv.cur.Store(&tls.Config{
		MinVersion:     s.Policy.MinVersion,
		MaxVersion:     s.Policy.MaxVersion,
		CipherSuites:   s.Policy.CipherSuites,
		NextProtos:     protos,
		GetCertificate: s.Certificates.GetCertificate,
	})
}
