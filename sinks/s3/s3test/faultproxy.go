package s3test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// Op is an S3 operation as the proxy recognises it from method and query.
type Op string

// Operations the proxy tells apart.
const (
	OpPutObject               Op = "PutObject"
	OpCreateMultipartUpload   Op = "CreateMultipartUpload"
	OpUploadPart              Op = "UploadPart"
	OpCompleteMultipartUpload Op = "CompleteMultipartUpload"
	OpAbortMultipartUpload    Op = "AbortMultipartUpload"
	OpListMultipartUploads    Op = "ListMultipartUploads"
	OpGetObject               Op = "GetObject"
	OpHeadObject              Op = "HeadObject"
	OpOther                   Op = "Other"
)

// Fault is what the proxy does to a request instead of forwarding it.
type Fault int

// Faults.
const (
	// Fault500 answers 500 InternalError without forwarding.
	Fault500 Fault = iota
	// FaultSlowDown answers 503 SlowDown (S3's throttling) without forwarding.
	FaultSlowDown
	// FaultCutRequest reads part of the request body and closes the
	// connection: the server never sees the request.
	FaultCutRequest
	// FaultCutResponse forwards the request, waits for the server's answer
	// and closes the connection instead of relaying it: the operation took
	// effect but the client cannot know.
	FaultCutResponse
)

func (f Fault) String() string {
	return [...]string{"500", "503 SlowDown", "cut request", "cut response"}[f]
}

// Rule makes the proxy apply Fault to requests of Op: it lets Skip of them
// through first, then faults the next Times of them.
type Rule struct {
	Op    Op
	Fault Fault
	Skip  int
	Times int
}

// FaultProxy is a reverse proxy in front of an S3 server that injects faults
// by operation. It keeps the client's Host header so SigV4 signatures still
// verify at the server.
type FaultProxy struct {
	URL    string
	target *url.URL
	rp     *httputil.ReverseProxy

	mu       sync.Mutex
	rules    []*Rule
	seen     map[Op]int
	injected map[Op]int
}

// NewFaultProxy starts a proxy on 127.0.0.1 in front of target (an endpoint
// URL); it stops when t ends.
func NewFaultProxy(t testing.TB, target string) *FaultProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatalf("fault proxy target: %v", err)
	}
	p := &FaultProxy{target: u, seen: map[Op]int{}, injected: map[Op]int{}}
	p.rp = &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(u)
		r.Out.Host = r.In.Host // signed by the client
	}}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// Add installs rules; they apply in order, each until its Times are used.
func (p *FaultProxy) Add(rules ...Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range rules {
		r := rules[i]
		p.rules = append(p.rules, &r)
	}
}

// Seen is how many requests of op reached the proxy.
func (p *FaultProxy) Seen(op Op) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen[op]
}

// Injected is how many requests of op were faulted.
func (p *FaultProxy) Injected(op Op) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.injected[op]
}

// OpOf classifies an S3 request.
func OpOf(r *http.Request) Op {
	q := r.URL.Query()
	_, uploads := q["uploads"]
	hasUploadID := q.Get("uploadId") != ""
	// Path style: /bucket/key; a request on the bucket itself has no key.
	hasKey := strings.Count(strings.Trim(r.URL.Path, "/"), "/") >= 1
	switch r.Method {
	case http.MethodPut:
		if hasUploadID && q.Get("partNumber") != "" {
			return OpUploadPart
		}
		if hasKey && !hasUploadID && r.Header.Get("X-Amz-Copy-Source") == "" && !q.Has("tagging") && !q.Has("acl") {
			return OpPutObject
		}
	case http.MethodPost:
		if uploads {
			return OpCreateMultipartUpload
		}
		if hasUploadID {
			return OpCompleteMultipartUpload
		}
	case http.MethodDelete:
		if hasUploadID {
			return OpAbortMultipartUpload
		}
	case http.MethodGet:
		if uploads {
			return OpListMultipartUploads
		}
		if hasKey && !hasUploadID && !q.Has("tagging") && !q.Has("acl") {
			return OpGetObject
		}
	case http.MethodHead:
		if hasKey {
			return OpHeadObject
		}
	}
	return OpOther
}

func (p *FaultProxy) pick(op Op) (Fault, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen[op]++
	for _, r := range p.rules {
		if r.Op != op || r.Times <= 0 {
			continue
		}
		if r.Skip > 0 {
			r.Skip--
			return 0, false
		}
		r.Times--
		p.injected[op]++
		return r.Fault, true
	}
	return 0, false
}

func (p *FaultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fault, ok := p.pick(OpOf(r))
	if !ok {
		p.rp.ServeHTTP(w, r)
		return
	}
	switch fault {
	case Fault500:
		_, _ = io.Copy(io.Discard, r.Body)
		s3Error(w, http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again.")
	case FaultSlowDown:
		_, _ = io.Copy(io.Discard, r.Body)
		s3Error(w, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
	case FaultCutRequest:
		_, _ = io.CopyN(io.Discard, r.Body, 1024)
		cut(w)
	case FaultCutResponse:
		out := r.Clone(r.Context())
		out.RequestURI = ""
		out.URL.Scheme, out.URL.Host = p.target.Scheme, p.target.Host
		out.Host = r.Host
		if resp, err := http.DefaultTransport.RoundTrip(out); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		cut(w)
	}
}

func cut(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic("s3test: response writer cannot be hijacked")
	}
	conn, _, err := hj.Hijack()
	if err == nil {
		conn.Close()
	}
}

func s3Error(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>`+
		`<Error><Code>`+code+`</Code><Message>`+msg+`</Message><RequestId>fault-proxy</RequestId></Error>`)
}
