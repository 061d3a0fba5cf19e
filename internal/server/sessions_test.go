package server

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/latch-lb/latch/internal/config"
)

// TestSessionsHaveTheirOwnIdentity: clients that start on one target in
// one second get cookies of their own, each session keeps its ID while it
// lives, and the target counts them apart.
func TestSessionsHaveTheirOwnIdentity(t *testing.T) {
	a := startBackend(t, "a")
	lb := startLB(t, lbConfig{targets: []string{a.addr}, sticky: true})
	const n = 20
	ids := map[uint64]bool{}
	values := map[string]bool{}
	for range n {
		r := get(t, lb.url+"/", "")
		if r.cookie == "" || values[r.cookie] {
			t.Fatalf("new session got cookie %q, empty or given before", r.cookie)
		}
		values[r.cookie] = true
		s := decode(t, r.cookie)
		if s.ID == 0 || ids[s.ID] {
			t.Fatalf("new session got ID %x, 0 or given before", s.ID)
		}
		ids[s.ID] = true
		// Its next request keeps the ID.
		if again := decode(t, get(t, lb.url+"/", "AWSALB="+r.cookie).cookie); again.ID != s.ID {
			t.Fatalf("the session's next response carries ID %x, want %x", again.ID, s.ID)
		}
	}
	got, err := lb.Sessions("web", 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// The count is an estimate: within 3 standard errors (2.7 sessions at
	// 20; target.SessionsSince).
	if c := got[a.addr]; c < n-2 || c > n+2 {
		t.Errorf("Sessions: got %v, want %d ±2 on %s", got, n, a.addr)
	}
	st := lb.Health("web")[0]
	if st.Sessions < n-2 || st.Sessions > n+2 || time.Since(st.LastSession) > time.Minute {
		t.Errorf("TargetStatus: got %d sessions, last at %v; want %d ±2, just now", st.Sessions, st.LastSession, n)
	}
	for _, w := range []time.Duration{0, 59 * time.Second, 61 * time.Minute} {
		if _, err := lb.Sessions("web", w); err == nil || !strings.Contains(err.Error(), "window") {
			t.Errorf("Sessions(web, %v): got %v, want an error about the window", w, err)
		}
	}
	if _, err := lb.Sessions("api", time.Minute); err == nil || !strings.Contains(err.Error(), `"api"`) {
		t.Errorf("Sessions(api): got %v, want an error naming the group", err)
	}
}

// waitDrainCompleted waits for the DrainCompleted event of target id.
func waitDrainCompleted(t *testing.T, sub *Subscription, id string, within time.Duration) Event {
	t.Helper()
	timeout := time.After(within)
	for {
		select {
		case e, ok := <-sub.C:
			if !ok {
				t.Fatal("the subscription ended")
			}
			if e.Kind == DrainCompleted && e.Target == id {
				return e
			}
		case <-timeout:
			t.Fatalf("no drain_completed event for %s within %v", id, within)
		}
	}
}

// TestDrainKeepSessions: a keep_sessions drain takes the target out of new
// picks while its sessions stay; with no session for the idle window it is
// complete (an event says so), and a session that comes back later moves.
func TestDrainKeepSessions(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	lb := startLB(t, lbConfig{targets: []string{a.addr, b.addr}, sticky: true})
	var onA string
	for range 10 {
		if r := get(t, lb.url+"/", ""); r.backend == "a" {
			onA = r.cookie
			break
		}
	}
	if onA == "" {
		t.Fatal("no new session reached a in 10 requests")
	}
	sub := lb.Subscribe(256)
	defer sub.Close()
	before := time.Now()
	if err := lb.Drain(t.Context(), "web", a.addr, config.Drain{Mode: config.DrainKeepSessions, Idle: time.Second}); err != nil {
		t.Fatal(err)
	}
	// New sessions go to b only; a's session stays on a. last is taken
	// before each of its requests: latch counts a session's time from
	// when its request came.
	var last time.Time
	for i := range 10 {
		if r := get(t, lb.url+"/", ""); r.backend != "b" {
			t.Fatalf("new session %d went to %s, want b (a drains)", i, r.backend)
		}
		last = time.Now()
		r := get(t, lb.url+"/", "AWSALB="+onA)
		if r.backend != "a" || r.moved != "" {
			t.Fatalf("a's session went to %s (moved %q) while a drains keeping sessions", r.backend, r.moved)
		}
		onA = r.cookie
	}
	st := lb.Health("web")[0]
	d := st.Drain
	if d == nil || d.Mode != "keep_sessions" || d.Complete || d.SessionsLeft != 1 || d.Idle != time.Second ||
		d.Since.Before(before) || d.LastSession.Before(d.Since) || !d.Deadline.IsZero() {
		t.Fatalf("drain status while a's session goes on: got %+v, want keep_sessions, 1 session left, incomplete", d)
	}
	if !st.Drained || st.State.String() != "draining" || st.Reason != "Latch.Drained" {
		t.Errorf("drained target's health: got %v %s (drained %t), want draining Latch.Drained", st.State, st.Reason, st.Drained)
	}
	e := waitDrainCompleted(t, sub, a.addr, 5*time.Second)
	if idle := time.Since(last); idle < time.Second {
		t.Errorf("drain completed %v after a's last session, before its idle window of 1s", idle)
	}
	if e.Group != "web" || !e.Drained {
		t.Errorf("event: got %+v, want group web, drained", e)
	}
	d = lb.Health("web")[0].Drain
	if d == nil || !d.Complete || d.CompletedAt.Before(d.LastSession) || d.SessionsLeft != 0 {
		t.Errorf("drain status once complete: got %+v", d)
	}
	r := get(t, lb.url+"/", "AWSALB="+onA)
	if r.backend != "b" || r.moved != a.addr {
		t.Errorf("a's session after the drain completed: went to %s (moved %q), want b, moved from %s", r.backend, r.moved, a.addr)
	}
	if err := lb.Undrain(t.Context(), "web", a.addr); err != nil {
		t.Fatal(err)
	}
	if st := lb.Health("web")[0]; st.Drain != nil || st.Drained {
		t.Errorf("after Undrain: got drain %+v, drained %t", st.Drain, st.Drained)
	}
}

// TestDrainDeadline: a session that keeps coming holds a keep_sessions
// drain open until its deadline, then moves.
func TestDrainDeadline(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	lb := startLB(t, lbConfig{targets: []string{a.addr, b.addr}, sticky: true})
	var onA string
	for range 10 {
		if r := get(t, lb.url+"/", ""); r.backend == "a" {
			onA = r.cookie
			break
		}
	}
	if onA == "" {
		t.Fatal("no new session reached a in 10 requests")
	}
	sub := lb.Subscribe(256)
	defer sub.Close()
	if err := lb.Drain(t.Context(), "web", a.addr, config.Drain{Idle: time.Second, Deadline: 2 * time.Second}); err != nil {
		t.Fatal(err)
	}
	since := lb.Health("web")[0].Drain.Since
	done := make(chan Event, 1)
	go func() { done <- waitDrainCompletedNoFail(sub, a.addr, 10*time.Second) }()
	// Every 200 ms a's session comes back: never idle for 1 s.
	var moved result
	for i := 0; i < 100; i++ {
		r := get(t, lb.url+"/", "AWSALB="+onA)
		if r.backend != "a" {
			moved = r
			break
		}
		onA = r.cookie
		time.Sleep(200 * time.Millisecond) // the session's pace: the thing under test, not a wait
	}
	if moved.backend != "b" || moved.moved != a.addr {
		t.Fatalf("at the deadline a's session went to %q (moved %q), want b, moved from %s", moved.backend, moved.moved, a.addr)
	}
	if at := time.Since(since); at < 2*time.Second {
		t.Errorf("the session moved %v after the drain began, before its 2s deadline", at)
	}
	if e := <-done; e.Kind != DrainCompleted {
		t.Fatalf("no drain_completed event at the deadline")
	}
	if d := lb.Health("web")[0].Drain; d == nil || !d.Complete || !d.Deadline.Equal(since.Add(2*time.Second)) {
		t.Errorf("drain status after the deadline: got %+v", d)
	}
}

func waitDrainCompletedNoFail(sub *Subscription, id string, within time.Duration) Event {
	timeout := time.After(within)
	for {
		select {
		case e, ok := <-sub.C:
			if !ok {
				return Event{}
			}
			if e.Kind == DrainCompleted && e.Target == id {
				return e
			}
		case <-timeout:
			return Event{}
		}
	}
}

// TestDrainImmediate: ALB's drain moves every session at once, and is
// complete when it begins.
func TestDrainImmediate(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	lb := startLB(t, lbConfig{targets: []string{a.addr, b.addr}, sticky: true})
	var onA string
	for range 10 {
		if r := get(t, lb.url+"/", ""); r.backend == "a" {
			onA = r.cookie
			break
		}
	}
	sub := lb.Subscribe(256)
	defer sub.Close()
	if err := lb.Drain(t.Context(), "web", a.addr, config.Drain{Mode: config.DrainImmediate}); err != nil {
		t.Fatal(err)
	}
	waitDrainCompleted(t, sub, a.addr, 5*time.Second)
	if r := get(t, lb.url+"/", "AWSALB="+onA); r.backend != "b" || r.moved != a.addr {
		t.Errorf("a's session after an immediate drain: went to %s (moved %q), want b, moved from %s", r.backend, r.moved, a.addr)
	}
	if d := lb.Health("web")[0].Drain; d == nil || d.Mode != "immediate" || !d.Complete {
		t.Errorf("immediate drain status: got %+v, want complete", d)
	}
}

func TestDrainRefusals(t *testing.T) {
	a := startBackend(t, "a")
	lb := startLB(t, lbConfig{targets: []string{a.addr}, sticky: true})
	for _, tt := range []struct {
		name, group, id string
		d               config.Drain
		want            []string
	}{
		{"unknown group", "api", a.addr, config.Drain{}, []string{`target group "api" does not exist`}},
		{"unknown target", "web", "127.0.0.1:1", config.Drain{}, []string{"127.0.0.1:1", `"web"`, "not registered"}},
		{"idle too short", "web", a.addr, config.Drain{Idle: time.Millisecond}, []string{"drain.idle", a.addr, `"web"`, "1ms"}},
		{"idle too long", "web", a.addr, config.Drain{Idle: 25 * time.Hour}, []string{"drain.idle", "25h"}},
		{"deadline before idle", "web", a.addr, config.Drain{Idle: time.Minute, Deadline: time.Second}, []string{"drain.deadline", a.addr}},
		{"deadline too far", "web", a.addr, config.Drain{Deadline: 8 * 24 * time.Hour}, []string{"drain.deadline"}},
		{"unknown mode", "web", a.addr, config.Drain{Mode: 7}, []string{"drain.mode", "keep_sessions, immediate"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := lb.Drain(t.Context(), tt.group, tt.id, tt.d)
			if err == nil {
				t.Fatal("Drain: got no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Drain: got %q, want it to name %q", err, w)
				}
			}
			if st := lb.Health("web")[0]; st.Drained {
				t.Errorf("a refused drain drained the target")
			}
		})
	}
	if err := lb.Undrain(t.Context(), "web", "127.0.0.1:1"); err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("Undrain of an unknown target: got %v", err)
	}
}

// TestMintCookie: a minted session reaches its target, for each sealed
// stickiness kind; MintCookie refuses what it cannot mint.
func TestMintCookie(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	for _, tt := range []struct {
		kind  string
		attrs map[string]string
	}{
		{"lb_cookie", nil},
		{"app_cookie", map[string]string{"stickiness.type": "app_cookie", "stickiness.app_cookie.cookie_name": "APP"}},
		{"header", map[string]string{"stickiness.type": "header", "stickiness.header.name": "X-Session"}},
	} {
		t.Run(tt.kind, func(t *testing.T) {
			lb := startLB(t, lbConfig{targets: []string{a.addr, b.addr}, sticky: true, attrs: tt.attrs})
			for _, target := range []*backend{a, b} {
				m, err := lb.MintCookie("web", target.addr)
				if err != nil {
					t.Fatal(err)
				}
				if m.Kind != tt.kind {
					t.Errorf("Kind: got %q, want %q", m.Kind, tt.kind)
				}
				for i := range 5 {
					req, _ := http.NewRequest("GET", lb.url+"/", nil)
					v := m.Value
					if m.AppCookie != "" {
						v += "; " + m.AppCookie + "=x"
					}
					req.Header.Set(m.Header, v)
					resp, err := client.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					if got := resp.Header.Get("X-Backend"); got != target.name {
						t.Fatalf("request %d with %s: %s went to %s, want %s", i, m.Header, v, got, target.name)
					}
				}
			}
		})
	}
	lb := startLB(t, lbConfig{targets: []string{a.addr}, sticky: false})
	for _, tt := range []struct{ group, id, want string }{
		{"api", a.addr, `"api" does not exist`},
		{"web", "127.0.0.1:1", "127.0.0.1:1 is not registered"},
		{"web", a.addr, "no sealed session"},
	} {
		if _, err := lb.MintCookie(tt.group, tt.id); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("MintCookie(%s, %s): got %v, want an error saying %q", tt.group, tt.id, err, tt.want)
		}
	}
	src := startLB(t, lbConfig{targets: []string{a.addr}, sticky: true, attrs: map[string]string{"stickiness.type": "source_ip"}})
	if _, err := src.MintCookie("web", a.addr); err == nil || !strings.Contains(err.Error(), "source_ip") {
		t.Errorf("MintCookie of a source_ip group: got %v", err)
	}
}
