// Package checkpoint stores, per org, how far vaultsink has mirrored the
// audit stream. The checkpoint only advances after the sink committed the
// window that ends there, and only contiguously.
package checkpoint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/vaultsink/vaultsink/internal/clip"
)

// Checkpoint is one org's progress.
type Checkpoint struct {
	Org string `json:"org_id"`
	// End is the end of the last committed window: everything before it is in
	// the sink. Zero means nothing has been written yet.
	End time.Time `json:"end"`
	// What the org's units were made with. A run refuses a checkpoint whose
	// window or sink differs from the configuration's (a change of window
	// needs `vaultsink rewindow`; another sink has none of this history).
	// Empty in checkpoints written before these were recorded: the first
	// run that writes records its own.
	Window Duration `json:"window,omitzero"`
	Sink   string   `json:"sink,omitempty"`
	// Start is where the org's history in the sink begins (its configured
	// start when the checkpoint was created, or earlier after a backfill).
	Start time.Time `json:"start,omitzero"`
	// LastData is the latest window that held events when it was
	// committed: when later windows come back empty, the API is asked for
	// it again, to tell a quiet org from a token that lost its org context.
	LastData *Range `json:"last_data,omitempty"`
	// Rewindow is set while `vaultsink rewindow` rewrites the org's units
	// into another window size; runs refuse the org until it finishes.
	Rewindow *Rewindow `json:"rewindow,omitempty"`
	// Totals since the checkpoint was created.
	Events      int64 `json:"events"`
	Bytes       int64 `json:"bytes"`
	Windows     int64 `json:"windows"`
	Quarantined int64 `json:"quarantined"`
	// LastRun is when the last run for this org finished; LastSuccess when one
	// last finished without error; LastError its message ("" after a success).
	LastRun     time.Time `json:"last_run,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	// Lease guards the org against a second daemon (stores that support it).
	Lease *Lease `json:"lease,omitempty"`
	// Unknown holds the members this version does not know (written by a
	// newer vaultsink), so that reading and writing a checkpoint never
	// drops them.
	Unknown map[string]json.RawMessage `json:"-"`
	// Version is the store's concurrency token (an S3 ETag, a file's
	// generation); opaque to callers, passed back on Put.
	Version string `json:"-"`
}

// Lease says which daemon may advance an org until when.
type Lease struct {
	Owner   string    `json:"owner"`
	Expires time.Time `json:"expires"`
	Epoch   int64     `json:"epoch"`
}

// Range is a half-open time range [Start, End).
type Range struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Rewindow records a rewrite of an org's units from one window size to
// another in progress.
type Rewindow struct {
	From    Duration  `json:"from"`
	To      Duration  `json:"to"`
	Started time.Time `json:"started"`
}

// Duration is a time.Duration written as text ("1h0m0s") in JSON.
type Duration time.Duration

// MarshalJSON writes d as text.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads text such as "1h" or "24h0m0s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	*d = Duration(v)
	return nil
}

// D is d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// checkpointJSON has Checkpoint's fields without its methods, for the
// custom (un)marshalling that keeps unknown members.
type checkpointJSON Checkpoint

// MarshalJSON writes the known fields and then the unknown members kept
// from the document the checkpoint was read from.
func (c Checkpoint) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(checkpointJSON(c))
	if err != nil || len(c.Unknown) == 0 {
		return b, err
	}
	keys := make([]string, 0, len(c.Unknown))
	for k := range c.Unknown {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b = b[:len(b)-1] // drop '}'
	for _, k := range keys {
		kb, _ := json.Marshal(k)
		b = append(b, ',')
		b = append(b, kb...)
		b = append(b, ':')
		b = append(b, c.Unknown[k]...)
	}
	return append(b, '}'), nil
}

// UnmarshalJSON reads the known fields and keeps every other member.
func (c *Checkpoint) UnmarshalJSON(b []byte) error {
	var v checkpointJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	for _, k := range knownKeys {
		delete(all, k)
	}
	if len(all) == 0 {
		all = nil
	}
	*c = Checkpoint(v)
	c.Unknown = all
	return nil
}

// knownKeys are the JSON members of Checkpoint.
var knownKeys = func() []string {
	var out []string
	t := reflect.TypeOf(checkpointJSON{})
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			out = append(out, name)
		}
	}
	return out
}()

// Store keeps checkpoints. Implementations are safe for concurrent use.
type Store interface {
	// Get returns the org's checkpoint, or ErrNotFound. A checkpoint that
	// exists but cannot be read or parsed, or is larger than MaxDocBytes, is
	// an error that names the object and says how to repair it (never
	// ErrNotFound).
	Get(ctx context.Context, org string) (Checkpoint, error)
	// Put writes cp atomically. cp.Version must be what Get returned (empty
	// for a new org); a store that supports compare-and-swap returns
	// ErrConflict if another writer moved it since. Put returns the new version.
	// It cuts cp.LastError to MaxLastErrorBytes and refuses, with
	// ErrTooLarge and before writing, a document over MaxDocBytes.
	Put(ctx context.Context, cp Checkpoint) (string, error)
	// Delete removes the org's checkpoint (idempotent).
	Delete(ctx context.Context, org string) error
	// List returns the orgs that have a checkpoint, sorted.
	List(ctx context.Context) ([]string, error)
	// Close releases resources.
	Close() error
}

// Sentinel errors of Store.
var (
	ErrNotFound = errors.New("checkpoint not found")
	ErrConflict = errors.New("checkpoint changed by another writer")
	// ErrTooLarge: the checkpoint's document would be larger than
	// MaxDocBytes. Put refuses it before writing anything, so a store never
	// holds a document it cannot read back.
	ErrTooLarge = errors.New("checkpoint document too large")
	// ErrPermanent marks store errors that retrying cannot fix (access
	// denied, a missing bucket): the runner holds the org back instead of
	// retrying on every tick, as for a sink's sinks.ErrPermanent.
	ErrPermanent = errors.New("permanent checkpoint store error")
)

// MaxDocBytes is the largest checkpoint document a store writes and reads
// back. Reads are bounded (a checkpoint is small state, not data), and
// every store refuses to write what it could not read.
const MaxDocBytes = 1 << 20

// MaxLastErrorBytes is the size Put cuts LastError to (clip.String, with
// the original length appended). Callers should cut it themselves; the
// store does it again so that no error message, however large, can make a
// checkpoint unwritable or unreadable.
const MaxLastErrorBytes = 2 << 10

// encode is the document every store writes for cp: indented JSON and a
// newline, LastError cut to MaxLastErrorBytes. A document over MaxDocBytes
// is ErrTooLarge, naming the org, the size, the limit and the largest
// member (what to look at).
func encode(cp Checkpoint) ([]byte, error) {
	cp.LastError = clip.String(cp.LastError, MaxLastErrorBytes)
	data, err := json.MarshalIndent(cp, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode checkpoint of org %s: %w", cp.Org, err)
	}
	data = append(data, '\n')
	if len(data) > MaxDocBytes {
		return nil, fmt.Errorf("checkpoint of org %s would be %d bytes, over the limit of %d bytes%s; not written: %w",
			cp.Org, len(data), MaxDocBytes, largestMember(data), ErrTooLarge)
	}
	return data, nil
}

// largestMember names the largest top-level member of a JSON object
// document, as ` (largest member "name": N bytes)`, or "".
func largestMember(data []byte) string {
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return ""
	}
	name, size := "", 0
	for k, v := range m {
		if len(v) > size || (len(v) == size && k < name) {
			name, size = k, len(v)
		}
	}
	if name == "" {
		return ""
	}
	return fmt.Sprintf(" (largest member %q: %d bytes)", name, size)
}

// resetCommand is the command that deletes org's checkpoint, as printed in
// repair hints. The store does not know the config file's path, so it
// stands as a placeholder.
func resetCommand(org string) string {
	return "vaultsink checkpoint reset --config <config> --org " + org + " --yes"
}
