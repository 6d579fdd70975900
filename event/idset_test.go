package event

import (
	"fmt"
	"testing"
)

func TestIDSet(t *testing.T) {
	s := NewIDSet()
	ids := []string{"a", "b", "evt_1", "evt_2", "", "h_0123"}
	for _, id := range ids {
		if !s.AddDigest(DigestOf([]byte(id))) {
			t.Fatalf("%q reported as seen", id)
		}
	}
	for _, id := range ids {
		if s.AddDigest(DigestOf([]byte(id))) {
			t.Fatalf("%q not remembered", id)
		}
	}
	s.Remove(DigestOf([]byte("b")))
	if !s.AddDigest(DigestOf([]byte("b"))) {
		t.Fatal("remove did not forget")
	}
	for i := range 100000 {
		s.AddDigest(DigestOf(fmt.Appendf(nil, "evt_x_%d", i)))
	}
	if s.Len() != 100000+len(ids) {
		t.Fatalf("len = %d: a collision among distinct ids", s.Len())
	}
	// ids whose first 64 bits collide are still told apart
	a, b := Digest{7, 1}, Digest{7, 2}
	if !s.AddDigest(a) || !s.AddDigest(b) || s.AddDigest(a) || s.AddDigest(b) {
		t.Fatal("first-half collision not handled")
	}
	s.Remove(a)
	if !s.AddDigest(a) || s.AddDigest(b) {
		t.Fatal("remove on a first-half collision")
	}
	s.Remove(b)
	if s.AddDigest(a) || !s.AddDigest(b) {
		t.Fatal("remove of the overflow entry")
	}
	if !s.Has("evt_x_7") || s.Has("evt_y_7") || !s.Contains(a) {
		t.Fatal("Has/contains")
	}
}
