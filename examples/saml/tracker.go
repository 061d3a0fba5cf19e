package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/crewjam/saml/samlsp"
)

// loginCookie is the cookie the SP sets when a login starts: it names the
// login, whose AuthnRequest lives in the memory of the instance that set
// it. app_cookie stickiness on it keeps a login on that instance.
const loginCookie = "saml_login"

// maxPending bounds the logins in flight one instance remembers: a client
// that starts logins without end must not grow the map without end.
const maxPending = 10000

// pendingTTL is how long a login in flight is remembered, samlsp's own
// default (DefaultTrackedRequestMaxAge).
const pendingTTL = samlsp.DefaultTrackedRequestMaxAge

// memTracker is the RequestTracker of latch's story: it keeps each
// outstanding AuthnRequest in this process's memory, and the browser holds
// only a cookie naming it. samlsp's own CookieRequestTracker carries the
// request in a signed cookie instead, and so works on any instance; many
// SAML libraries and applications keep it in memory or in a local session
// store, and then only the instance that sent the request can accept the
// answer.
type memTracker struct {
	name    string // this instance's, which begins every login's name
	mu      sync.Mutex
	pending map[string]pending // by RelayState
}

type pending struct {
	samlsp.TrackedRequest
	at time.Time
}

var _ samlsp.RequestTracker = (*memTracker)(nil)

var errUnknownRelayState = errors.New("no login in flight with this RelayState in this process")

func newMemTracker(name string) *memTracker {
	return &memTracker{name: name, pending: map[string]pending{}}
}

// beganOn returns the instance that began the login the request's cookie
// names, or "".
func beganOn(r *http.Request) string {
	c, err := r.Cookie(loginCookie)
	if err != nil {
		return ""
	}
	name, _, ok := strings.Cut(c.Value, ".")
	if !ok {
		return ""
	}
	return name
}

// TrackRequest remembers the AuthnRequest id here and names it in a
// cookie. The name starts with this instance's, so that another instance
// can tell where a login began.
func (t *memTracker) TrackRequest(w http.ResponseWriter, r *http.Request, samlRequestID string) (string, error) {
	b := make([]byte, 24)
	rand.Read(b)
	index := t.name + "." + base64.RawURLEncoding.EncodeToString(b)
	now := time.Now()
	t.mu.Lock()
	if len(t.pending) >= maxPending {
		for k, p := range t.pending {
			if now.Sub(p.at) > pendingTTL {
				delete(t.pending, k)
			}
		}
	}
	if len(t.pending) >= maxPending {
		t.mu.Unlock()
		return "", errors.New("too many logins in flight")
	}
	t.pending[index] = pending{samlsp.TrackedRequest{Index: index, SAMLRequestID: samlRequestID, URI: r.URL.String()}, now}
	t.mu.Unlock()
	// SameSite=None: the IdP's answer is a cross-site POST, which carries
	// no Lax cookie (samlsp's CookieRequestTracker does the same over
	// https).
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: index, Path: "/", MaxAge: int(pendingTTL.Seconds()),
		HttpOnly: true, Secure: true, SameSite: http.SameSiteNoneMode})
	return index, nil
}

// StopTrackingRequest forgets a login once it succeeded.
func (t *memTracker) StopTrackingRequest(w http.ResponseWriter, r *http.Request, index string) error {
	t.mu.Lock()
	delete(t.pending, index)
	t.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: loginCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteNoneMode})
	return nil
}

// GetTrackedRequests returns the login the browser's cookie names, if
// this process started it: the request ids the answer may be for.
func (t *memTracker) GetTrackedRequests(r *http.Request) []samlsp.TrackedRequest {
	c, err := r.Cookie(loginCookie)
	if err != nil {
		return nil
	}
	if tr, err := t.GetTrackedRequest(r, c.Value); err == nil {
		return []samlsp.TrackedRequest{*tr}
	}
	return nil
}

// GetTrackedRequest returns the login in flight under index.
func (t *memTracker) GetTrackedRequest(r *http.Request, index string) (*samlsp.TrackedRequest, error) {
	t.mu.Lock()
	p, ok := t.pending[index]
	t.mu.Unlock()
	if !ok || time.Since(p.at) > pendingTTL {
		return nil, errUnknownRelayState
	}
	tr := p.TrackedRequest
	return &tr, nil
}

// has reports whether this process started the login index names.
func (t *memTracker) has(index string) bool {
	_, err := t.GetTrackedRequest(nil, index)
	return err == nil
}
