package dashboard

import (
	"bytes"
	"encoding/json"
	"net/http"
	"time"
)

// writeTimeout bounds each message's write: a client that stops reading
// ends its stream instead of holding a goroutine.
const writeTimeout = 10 * time.Second

// Stream serves GET /api/v1/stream: server-sent events, one JSON message
// (the running state, with each target's rates) a second, and one at once
// on every change of the server's (a health transition, a registration, a
// weight, a drain, a change applied). It ends when the client goes, the
// server shuts down or the dashboard is closed.
func (d *Dashboard) Stream() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET")
			writeError(w, http.StatusMethodNotAllowed, "the stream is read with GET")
			return
		}
		d.stream(w, r)
	})
}

func (d *Dashboard) stream(w http.ResponseWriter, r *http.Request) {
	d.closeAtShutdown(r)
	rc := http.NewResponseController(w)
	// The stream reads nothing after its request: the listener's
	// ReadTimeout would otherwise end it, for net/http cancels a request's
	// context when the connection's read deadline passes (golang/go#18447).
	rc.SetReadDeadline(time.Time{})
	// Subscribe before the first snapshot, so that no change falls
	// between them.
	sub := d.srv.Subscribe(64)
	defer sub.Close()
	ticker := time.NewTicker(d.tick)
	defer ticker.Stop()
	smp := newSampler(d.totals, d.tick, d.window)
	smp.sample(time.Now())

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)

	var buf bytes.Buffer
	send := func(cause string) bool {
		buf.Reset()
		buf.WriteString("data: ")
		msg := view(d.srv.Snapshot(), cause, smp.rates())
		if d.cluster != nil {
			msg.Cluster = clusterOf(d.cluster.Status())
		}
		if err := json.NewEncoder(&buf).Encode(msg); err != nil {
			d.log.Error("dashboard: cannot encode the state", "err", err)
			return false
		}
		buf.WriteString("\n") // Encode ended the line; a blank one ends the event
		rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := w.Write(buf.Bytes()); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	if !send("hello") {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case <-d.closed:
			return
		case now := <-ticker.C:
			smp.sample(now)
			if !send("tick") {
				return
			}
		case e, ok := <-sub.C:
			if !ok {
				return // the server shut down
			}
			// A change often comes with others (a reload registers
			// several targets): one message for all that are here.
			cause := e.Kind.String()
		more:
			for {
				select {
				case _, ok := <-sub.C:
					if !ok {
						return
					}
				default:
					break more
				}
			}
			if !send(cause) {
				return
			}
		}
	}
}

// writeError answers with a JSON error, as the admin API does.
func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(struct {
		Error string `json:"error"`
	}{msg})
}
