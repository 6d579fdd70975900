package event

import (
	"hash/maphash"
	"sync"
)

// Event ids are remembered as 128-bit digests (two maphash seeds), not as
// strings: a set costs 21–43 B per id depending on where its table is in
// its growth, against 60 B and up for a map of strings. The seeds are the
// process's, shared by every set, so the one digest the decoder takes of a
// record's id is looked up in the window's own set and in the sets of what
// the sink already holds (Known) alike. Two different ids collide only on
// a full 128-bit collision: about n²/2¹²⁹, below 10⁻²⁶ for a million ids.
// Digests live only in one process, so the seeds need not be stable.
var idSeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

// Digest is an event id's key in every id set.
type Digest [2]uint64

func DigestOf(id []byte) Digest {
	return Digest{maphash.Bytes(idSeeds[0], id), maphash.Bytes(idSeeds[1], id)}
}

// IDSet is a set of event ids. It is not safe for concurrent use; a set
// handed to a walk (Known) must not change while the walk runs.
//
// It is an open-addressing table of digests with linear probing: a digest
// is already uniformly random, so its first half indexes the table
// without hashing again, and a lookup or insert touches one cache line
// almost always. A slot costs 16 bytes; the table doubles at 3/4 full, so
// a set holds an id in 21–43 bytes. The all-zero digest marks an empty
// slot; an id whose digest is all zero (one in 2¹²⁸) is kept in zero.
type IDSet struct {
	slots []Digest
	n     int  // digests in slots
	zero  bool // the all-zero digest is in the set
}

// NewIDSet returns an empty set.
func NewIDSet() *IDSet { return NewIDSetSize(0) }

// NewIDSetSize returns an empty set that holds n ids before it grows.
func NewIDSetSize(n int) *IDSet {
	size := 16
	for size*3/4 < n {
		size *= 2
	}
	return &IDSet{slots: make([]Digest, size)}
}

// Add inserts id and reports whether it was new.
func (s *IDSet) Add(id string) bool { return s.AddDigest(DigestOf([]byte(id))) }

// Has reports whether id is in the set.
func (s *IDSet) Has(id string) bool { return s != nil && s.has(DigestOf([]byte(id))) }

// Len is the number of ids in the set.
func (s *IDSet) Len() int {
	if s == nil {
		return 0
	}
	if s.zero {
		return s.n + 1
	}
	return s.n
}

// find returns the slot of k, or of the empty slot where k would go.
func (s *IDSet) find(k Digest) int {
	mask := len(s.slots) - 1
	for i := int(k[0]) & mask; ; i = (i + 1) & mask {
		if v := s.slots[i]; v == k || v == (Digest{}) {
			return i
		}
	}
}

func (s *IDSet) has(k Digest) bool {
	if k == (Digest{}) {
		return s.zero
	}
	return s.slots[s.find(k)] == k
}

// add inserts k and reports whether it was new.
func (s *IDSet) AddDigest(k Digest) bool {
	if k == (Digest{}) {
		was := s.zero
		s.zero = true
		return !was
	}
	i := s.find(k)
	if s.slots[i] == k {
		return false
	}
	if (s.n+1)*4 > len(s.slots)*3 {
		s.grow()
		i = s.find(k)
	}
	s.slots[i] = k
	s.n++
	return true
}

func (s *IDSet) grow() {
	old := s.slots
	s.slots = make([]Digest, 2*len(old))
	for _, v := range old {
		if v != (Digest{}) {
			s.slots[s.find(v)] = v
		}
	}
}

// remove forgets k (the undo of a successful add). Linear probing keeps
// every digest reachable from its home slot without gaps, so the digests
// after the freed slot are moved back into it where their probe allows
// (backward-shift deletion, no tombstones).
func (s *IDSet) Remove(k Digest) {
	if k == (Digest{}) {
		s.zero = false
		return
	}
	i := s.find(k)
	if s.slots[i] != k {
		return
	}
	mask := len(s.slots) - 1
	for j := (i + 1) & mask; s.slots[j] != (Digest{}); j = (j + 1) & mask {
		home := int(s.slots[j][0]) & mask
		// j's digest may fill the hole at i unless its home lies
		// cyclically in (i, j].
		if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
			s.slots[i] = s.slots[j]
			i = j
		}
	}
	s.slots[i] = Digest{}
	s.n--
}

// HeldSet is what a sink already holds for one window: every event id of
// the window's unit with a digest of the row's content (RowDigester). A
// walk of the window marks the ids it meets again, and so does the sink
// for rows written to it, so that afterwards the runner knows what the API
// no longer returns (Missing) and which rows came back with other content
// (Changed). The held copy always wins: the archive never rewrites or drops
// a row it holds. It is safe for concurrent use (a walk marks it while the
// sink writes the walk's pages).
type HeldSet struct {
	mu      sync.Mutex
	m       map[Digest]heldRow
	seen    int
	changed int
}

type heldRow struct {
	content uint64
	seen    bool
	changed bool
}

// NewHeldSet returns an empty set sized for n rows.
func NewHeldSet(n int) *HeldSet { return &HeldSet{m: make(map[Digest]heldRow, n)} }

// Add records a held row. A repeated id keeps its first content.
func (h *HeldSet) Add(id string, content uint64) {
	k := DigestOf([]byte(id))
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.m[k]; !ok {
		h.m[k] = heldRow{content: content}
	}
}

// Len is the number of distinct ids held.
func (h *HeldSet) Len() int {
	if h == nil {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.m)
}

// Seen is how many held ids the walk met again.
func (h *HeldSet) Seen() int {
	if h == nil {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seen
}

// Missing is how many held ids the walk did not meet: events the API no
// longer returns for the window (they stay in the sink).
func (h *HeldSet) Missing() int { return h.Len() - h.Seen() }

// Changed is how many held ids came back with other content (the held copy
// was kept).
func (h *HeldSet) Changed() int {
	if h == nil {
		return 0
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.changed
}

// Has reports whether id is held.
func (h *HeldSet) Has(id string) bool { return h.Contains(DigestOf([]byte(id))) }

// MeetRow marks the held id of row i of the batch rd was reset to, as a
// walk meets it (see meet), and reports whether it is held: a sink skips
// such a row, whose held copy wins.
func (h *HeldSet) MeetRow(id string, rd *RowDigester, i int) bool {
	k := DigestOf([]byte(id))
	if !h.Contains(k) {
		return false
	}
	h.Meet(k, rd.Digest(i))
	return true
}

// meet marks k seen (and changed when its content differs) if it is held,
// and reports whether it is, with its marks before the call when this call
// changed them (so a failed page can restore them with undo).
func (h *HeldSet) Meet(k Digest, content uint64) (held bool, undo HeldUndo, marked bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.m[k]
	if !ok {
		return false, HeldUndo{}, false
	}
	was := r
	if !r.seen {
		r.seen = true
		h.seen++
	}
	if !r.changed && content != r.content {
		r.changed = true
		h.changed++
	}
	if r == was {
		return true, HeldUndo{}, false
	}
	h.m[k] = r
	return true, HeldUndo{k: k, was: was}, true
}

// HeldUndo is a held row's marks before a page changed them.
type HeldUndo struct {
	k   Digest
	was heldRow
}

// undo restores marks changed by a page that then failed to decode, latest
// first, so the page leaves no trace.
func (h *HeldSet) Undo(us []HeldUndo) {
	if len(us) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for i := len(us) - 1; i >= 0; i-- {
		u := us[i]
		r := h.m[u.k]
		if r.seen && !u.was.seen {
			h.seen--
		}
		if r.changed && !u.was.changed {
			h.changed--
		}
		h.m[u.k] = u.was
	}
}

// contains makes a HeldSet an IDLookup: the next window's walk checks its
// records against this window's held ids.
func (h *HeldSet) Contains(k Digest) bool {
	if h == nil {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, ok := h.m[k]
	return ok
}

// Known is what the sink already holds around one window, handed to its
// walk so that an id is archived once per org:
//   - Held: the window's own unit. A record whose id is held is dropped
//     (the held copy wins) and marked met.
//   - Near: ids held by, or just archived in, the adjacent windows. A
//     record whose id is there is a repeat across windows: dropped and
//     counted in Page.NearDuplicates.
//
// The sets must not change while the walk runs.
type Known struct {
	Held *HeldSet
	Near []IDLookup
}

// IDLookup is a set of ids a walk checks records against: an *IDSet or a
// *HeldSet.
type IDLookup interface{ Contains(Digest) bool }

func (s *IDSet) Contains(k Digest) bool { return s != nil && s.has(k) }
