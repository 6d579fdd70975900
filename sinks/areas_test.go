package sinks_test

import (
	"testing"

	"github.com/vaultsink/vaultsink/sinks"
)

func TestOverlaps(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"a/b", "a/b/c", true},
		{"a/b/", "a/b", true},
		{"a/b", "a/bc", false},
		{"vaultsink/state", "vaultterm/events", false},
		{"", "x", true},
	}
	for _, tc := range tests {
		if got := sinks.Overlaps(tc.a, tc.b); got != tc.want {
			t.Errorf("Overlaps(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestAreasOverlap(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"s3://b/vaultterm/events", "s3://b/vaultterm/events/state", true},
		{"s3://b/vaultterm", "s3://b/vaultterm/_quarantine", true},
		{"s3://b/vaultsink/state", "s3://b/vaultterm/events", false},
		{"s3://b/a", "s3://b/ab", false},
		{"s3://b/", "s3://b/a", true},            // the whole bucket
		{"s3://b1/a", "s3://b2/a", false},        // another bucket
		{"s3://b/a", "s3://b1/a", false},         // a bucket named with b's name as prefix
		{"s3://b/a", "gs://b/a", false},          // another scheme
		{"s3://b/a%20b/c", "s3://b/a%20b", true}, // prefixes are keys, not escaped URL paths
	}
	for _, tc := range tests {
		for _, ab := range [][2]string{{tc.a, tc.b}, {tc.b, tc.a}} {
			if got := sinks.AreasOverlap(ab[0], ab[1]); got != tc.want {
				t.Errorf("AreasOverlap(%q, %q) = %v, want %v", ab[0], ab[1], got, tc.want)
			}
		}
	}
}
