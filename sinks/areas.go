package sinks

import "strings"

// Overlaps reports whether one of two key prefixes contains the other,
// element by element ("a/b" contains "a/b/c" but not "a/bc"); the empty
// prefix contains every key.
func Overlaps(a, b string) bool {
	a, b = strings.Trim(a, "/")+"/", strings.Trim(b, "/")+"/"
	if a == "/" || b == "/" {
		return true
	}
	return strings.HasPrefix(a, b) || strings.HasPrefix(b, a)
}

// SplitArea splits an area into its root (scheme and bucket, "s3://bucket")
// and its key prefix, without the slashes around it. An area is where a
// sink, or a store that shares its namespace, keeps objects, written as a
// URL: s3://bucket/prefix.
func SplitArea(area string) (root, prefix string) {
	scheme, rest, _ := strings.Cut(area, "://")
	bucket, prefix, _ := strings.Cut(rest, "/")
	return scheme + "://" + bucket, strings.Trim(prefix, "/")
}

// AreasOverlap reports whether two areas share keys, so that a reader
// listing one would see objects of the other: the same scheme and bucket,
// and prefixes that overlap.
func AreasOverlap(a, b string) bool {
	ra, pa := SplitArea(a)
	rb, pb := SplitArea(b)
	return ra == rb && Overlaps(pa, pb)
}
