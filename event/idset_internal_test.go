package event

import (
	"math/rand/v2"
	"testing"
)

// TestIDSetAgainstMap: random adds, lookups and removes (the undo of a
// page) agree with a map, also when many digests share a home slot (the
// low bits of their first half), when they wrap around the table's end,
// across growth, and for the all-zero digest.
func TestIDSetAgainstMap(t *testing.T) {
	for _, shape := range []struct {
		name string
		key  func(r *rand.Rand) Digest
	}{
		{"random", func(r *rand.Rand) Digest { return Digest{r.Uint64(), r.Uint64()} }},
		// few home slots, many collisions, probes that wrap
		{"clustered", func(r *rand.Rand) Digest { return Digest{uint64(r.IntN(8)) | uint64(r.IntN(4))<<40, r.Uint64() % 64} }},
		{"high-slots", func(r *rand.Rand) Digest { return Digest{uint64(1<<20 - 1 - r.IntN(6)), r.Uint64() % 32} }},
		{"with-zero", func(r *rand.Rand) Digest {
			if r.IntN(10) == 0 {
				return Digest{}
			}
			return Digest{r.Uint64() % 16, 0}
		}},
	} {
		t.Run(shape.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			s := NewIDSet()
			ref := map[Digest]bool{}
			for step := range 200_000 {
				k := shape.key(r)
				switch r.IntN(3) {
				case 0, 1:
					if got, want := s.AddDigest(k), !ref[k]; got != want {
						t.Fatalf("step %d: add(%v) = %v, want %v", step, k, got, want)
					}
					ref[k] = true
				default:
					s.Remove(k)
					delete(ref, k)
				}
				if got := s.has(k); got != ref[k] {
					t.Fatalf("step %d: has(%v) = %v, want %v", step, k, got, ref[k])
				}
				if step%5000 == 0 {
					for k := range ref {
						if !s.has(k) {
							t.Fatalf("step %d: %v lost", step, k)
						}
					}
				}
			}
			if s.Len() != len(ref) {
				t.Fatalf("Len %d, want %d", s.Len(), len(ref))
			}
			for k := range ref {
				if !s.has(k) {
					t.Fatalf("%v lost", k)
				}
			}
		})
	}
}

// TestIDSetSize: a set sized for n holds n ids without growing.
func TestIDSetSize(t *testing.T) {
	s := NewIDSetSize(1000)
	before := len(s.slots)
	for i := range 1000 {
		s.AddDigest(Digest{uint64(i)*0x9e3779b97f4a7c15 + 1, uint64(i)})
	}
	if len(s.slots) != before || s.Len() != 1000 {
		t.Fatalf("%d slots after 1000 adds, %d before; Len %d", len(s.slots), before, s.Len())
	}
}
