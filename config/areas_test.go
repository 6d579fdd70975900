package config

import (
	"strings"
	"testing"
)

// TestAreas: an S3 checkpoint store may not keep its state inside an S3
// sink's table or quarantine prefix (the top-level sink's or an org's) in
// the same bucket; another bucket, a sibling prefix or a pair that is not
// S3 on both sides is fine.
func TestAreas(t *testing.T) {
	testEnv(t)
	const head = "source:\n  base_url: http://127.0.0.1:8787/api\nstart: 2026-06-01T00:00:00Z\n"
	const s3Sink = "sink:\n  type: s3\n  bucket: audit\n  prefix: audit/events\n  region: us-east-1\n"
	const org = "orgs:\n  - id: org_1\n    token: vt_test_token_for_config\n"
	s3Store := func(bucket, prefix string) string {
		return "checkpoint:\n  type: s3\n  bucket: " + bucket + "\n  prefix: " + prefix + "\n  region: us-east-1\n"
	}
	tests := []struct {
		name, yaml, want string // want "" is no error
	}{
		{"inside the table", head + org + s3Sink + s3Store("audit", "audit/events/state"),
			`checkpoint.prefix: "audit/events/state": overlaps sink prefix "audit/events" in the same bucket`},
		{"the table's parent", head + org + s3Sink + s3Store("audit", "/audit/"),
			`checkpoint.prefix: "audit": overlaps sink prefix "audit/events" in the same bucket`},
		{"inside the quarantine", head + org + s3Sink + s3Store("audit", "audit/_quarantine/state"),
			`checkpoint.prefix: "audit/_quarantine/state": overlaps sink prefix "audit/_quarantine" in the same bucket`},
		{"inside an org's table", head +
			"orgs:\n  - id: org_1\n    token: vt_test_token_for_config\n    sink:\n      type: s3\n      bucket: audit\n      prefix: org1/events\n      region: us-east-1\n" +
			"sink:\n  type: local\n  path: ./out\n" + s3Store("audit", "org1/events/state"),
			`checkpoint.prefix: "org1/events/state": overlaps orgs[0].sink prefix "org1/events" in the same bucket`},
		{"another bucket", head + org + s3Sink + s3Store("state", "audit/events/state"), ""},
		{"a sibling prefix", head + org + s3Sink + s3Store("audit", "audit/eventstate"), ""},
		{"default prefix", head + org + s3Sink + "checkpoint:\n  type: s3\n  bucket: audit\n  region: us-east-1\n", ""},
		{"local sink, s3 store", head + org + "sink:\n  type: local\n  path: audit/events\n" + s3Store("audit", "audit/events"), ""},
		{"s3 sink, file store", head + org + s3Sink + "checkpoint:\n  type: file\n  path: audit/events\n", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), "areas.yaml")
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want one containing %s", err, tc.want)
			}
		})
	}
}
