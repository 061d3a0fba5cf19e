package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/latch-lb/latch/internal/config"
	"github.com/latch-lb/latch/internal/server"
)

// apiError is a refusal with its status: every error the API answers is
// one, written as JSON by writeError.
type apiError struct {
	status   int
	msg      string
	problems config.Problems
}

func (e *apiError) Error() string { return e.msg }

func notFound(format string, args ...any) *apiError {
	return &apiError{status: http.StatusNotFound, msg: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// ErrorBody is every error's JSON: what was wrong, and for a refused
// change every problem with its path in the config file's terms.
type ErrorBody struct {
	Error    string         `json:"error"`
	Problems []ProblemEntry `json:"problems,omitempty"`
}

// ProblemEntry is one problem of a refused change.
type ProblemEntry struct {
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
}

// asAPIError maps an error from a handler or from Server.Update to what
// the client gets: a refused change (config.Problems) is 422 with every
// problem; a cluster store that cannot be reached 503, a change that
// lost a race with another node's 409; anything else not already an
// apiError is 500.
func asAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var ps config.Problems
	if errors.As(err, &ps) {
		n := "1 problem"
		if len(ps) != 1 {
			n = fmt.Sprintf("%d problems", len(ps))
		}
		return &apiError{status: http.StatusUnprocessableEntity, msg: "the change is refused and nothing changed: " + n, problems: ps}
	}
	switch {
	case errors.Is(err, server.ErrStoreUnavailable):
		return &apiError{status: http.StatusServiceUnavailable, msg: "the change is refused and nothing changed: " + err.Error()}
	case errors.Is(err, server.ErrStoreConflict):
		return &apiError{status: http.StatusConflict, msg: "the change is refused and nothing changed: " + err.Error()}
	}
	return &apiError{status: http.StatusInternalServerError, msg: err.Error()}
}

func writeError(w http.ResponseWriter, e *apiError) {
	body := ErrorBody{Error: e.msg}
	for _, p := range e.problems {
		body.Problems = append(body.Problems, ProblemEntry{Path: p.Path, Message: p.Msg})
	}
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="latch admin"`)
	}
	writeJSON(w, e.status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // "Bearer <token>" reads as written; the type is JSON, never HTML
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		b.Reset()
		b.WriteString(`{"error": "cannot encode the response"}` + "\n")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// reply is a handler's answer: the body as JSON, with its ETag.
type reply struct {
	status int    // 0: 200
	etag   string // unquoted, as in bodies' "version"
	body   any
}

type handlerFunc func(r *http.Request) (reply, error)

// endpoint serves h after the token check: every write needs the token,
// a read needs it off loopback.
func (a *Admin) endpoint(write bool, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e := a.authorize(r, write); e != nil {
			writeError(w, e)
			return
		}
		if write {
			if r.ContentLength > a.o.MaxBody {
				writeError(w, tooLarge(a.o.MaxBody))
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, a.o.MaxBody)
		}
		rep, err := h(r)
		if err != nil {
			writeError(w, asAPIError(err))
			return
		}
		if rep.etag != "" {
			w.Header().Set("ETag", `"`+rep.etag+`"`)
		}
		if rep.status == 0 {
			rep.status = http.StatusOK
		}
		if rep.status == http.StatusNoContent {
			w.WriteHeader(rep.status)
			return
		}
		writeJSON(w, rep.status, rep.body)
	})
}

func tooLarge(max int64) *apiError {
	return &apiError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("request body: larger than %d bytes", max)}
}

// decode reads r's JSON body into v strictly: unknown fields and trailing
// data are errors naming what was wrong. An empty body leaves v as is
// when optional.
func decode(r *http.Request, v any, optional bool) error {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge(mbe.Limit)
		}
		return badRequest("request body: %v", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		if optional {
			return nil
		}
		return badRequest("request body: empty; want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return badRequest("request body: invalid JSON at byte %d: %v", se.Offset, se)
		case errors.As(err, &te):
			return badRequest("request body: %s: want a %s, got a JSON %s", te.Field, te.Type, te.Value)
		}
		return badRequest("request body: %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return badRequest("request body: more than one JSON value")
	}
	return nil
}

// statusRecorder keeps the status and headers of the mux's own 404 and 405
// answers, so that they go out as JSON like every other error.
type statusRecorder struct {
	h      http.Header
	status int
}

func (s *statusRecorder) Header() http.Header         { return s.h }
func (s *statusRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (s *statusRecorder) WriteHeader(status int)      { s.status = status }

// routes serves the API and /metrics from one mux, whose 404 and 405
// answers go out as JSON, and everything else from the dashboard: it has
// a mux of its own, so that a catch-all page can neither take the API's
// unknown paths nor its wrong methods.
func (a *Admin) routes() http.Handler {
	mux := http.NewServeMux()
	a.register(mux)
	if a.o.Metrics != nil {
		metrics := a.o.Metrics
		mux.Handle("GET /metrics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if e := a.authorize(r, false); e != nil {
				writeError(w, e)
				return
			}
			metrics.ServeHTTP(w, r)
		}))
	}
	if a.o.Stream != nil {
		stream := a.o.Stream
		mux.Handle("GET /api/v1/stream", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if e := a.authorize(r, false); e != nil {
				writeError(w, e)
				return
			}
			stream.ServeHTTP(w, r)
		}))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/api/") && r.URL.Path != "/metrics" && a.o.Dashboard != nil {
			a.o.Dashboard.ServeHTTP(w, r)
			return
		}
		// Handler finds the pattern without setting r's path values, which
		// only ServeHTTP does.
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		rec := &statusRecorder{h: http.Header{}}
		mux.ServeHTTP(rec, r)
		switch rec.status {
		case http.StatusNotFound:
			writeError(w, notFound("no such endpoint: %s %s (the API is under /api/v1/)", r.Method, r.URL.Path))
		case http.StatusMethodNotAllowed:
			w.Header().Set("Allow", rec.h.Get("Allow"))
			writeError(w, &apiError{status: http.StatusMethodNotAllowed,
				msg: fmt.Sprintf("method %s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, rec.h.Get("Allow"))})
		default: // a redirect to the clean path
			mux.ServeHTTP(w, r)
		}
	})
}
