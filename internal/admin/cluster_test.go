package admin

import (
	"net/http"
	"strings"
	"testing"
)

func TestHealthAndClusterEndpointsAlone(t *testing.T) {
	h := start(t, 200)
	var hl Health
	h.do(t, req{method: "GET", path: "/api/v1/health", token: "-"}).want(t, http.StatusOK).json(t, &hl)
	if hl.Status != "ok" || len(hl.Problems) != 0 || hl.Cluster != nil {
		t.Errorf("a lone latch's health: %+v, want ok, no problem, no cluster", hl)
	}
	for _, q := range []req{{method: "GET", path: "/api/v1/cluster"}, {method: "GET", path: "/api/v1/cluster/nodes"},
		{method: "GET", path: "/api/v1/cluster/keys"}, {method: "POST", path: "/api/v1/cluster/keys/rotate"}} {
		e := h.do(t, q).want(t, http.StatusNotFound).errorBody(t)
		if !strings.Contains(e.Error, "cluster mode is off") {
			t.Errorf("%s %s on a lone latch: %q, want it to say cluster mode is off", q.method, q.path, e.Error)
		}
	}
}
