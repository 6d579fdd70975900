package source_test

import (
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/vaultsink/vaultsink/source"
)

// freePort returns a 127.0.0.1 port nothing listens on (it was free a moment ago).
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// htmlNotFound answers every request like a web server that is not the
// Events API: a 404 HTML page.
func htmlNotFound(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html;charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte("<!DOCTYPE HTML>\n<html lang=\"en\">\n  <head>\n    <title>Error response</title>\n  </head>\n" +
			"  <body><h1>Error response</h1><p>Error code: 404</p><p>Message: File not found.</p></body>\n</html>\n"))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestRequestErrorsNameTheSetting: the errors a wrong source.base_url
// causes name the URL that was asked (without its query) and the setting
// to check, and never dump another server's HTML page.
func TestRequestErrorsNameTheSetting(t *testing.T) {
	sim := startSim(t, nil)
	refused := freePort(t)
	tests := []struct {
		name    string
		base    string
		class   error
		want    []string
		notWant []string
	}{
		{"base_url without the /api prefix", strings.TrimSuffix(sim.URL, "/api"), source.ErrRequest,
			[]string{"HTTP 404", "GET " + strings.TrimSuffix(sim.URL, "/api") + "/events/v1 does not exist", "check source.base_url (the API root with its path prefix"},
			[]string{"?from="}},
		{"another server's HTML 404", htmlNotFound(t), source.ErrRequest,
			[]string{"HTTP 404", `"Error response"`, "an HTML page, not the Events API's JSON error", "check source.base_url first"},
			[]string{"<!DOCTYPE", "<html", "<title>"}},
		{"nothing listens", "http://" + refused + "/api", source.ErrRetriesExhausted,
			[]string{"GET http://" + refused + "/api/events/v1: dial tcp " + refused, "connection refused", "check source.base_url"},
			[]string{"?from=", "Get:"}},
		{"a password in base_url", "http://vt:hunter2@" + refused + "/api", source.ErrRetriesExhausted,
			[]string{"GET http://vt:xxxxx@" + refused + "/api/events/v1"},
			[]string{"hunter2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, tc.base, func(c *source.Config) { c.Retry.MaxAttempts = 2 }, nil, nil)
			_, err := walk(t, c, orgOf(sim, "org_1"), win)
			if !errors.Is(err, tc.class) {
				t.Fatalf("err = %v, want %v", err, tc.class)
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not contain %q:\n%s", w, msg)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(msg, w) {
					t.Errorf("error contains %q:\n%s", w, msg)
				}
			}
		})
	}
}
