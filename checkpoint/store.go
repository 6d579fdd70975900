// Package checkpoint stores, per org, how far vaultsink has mirrored the
// audit stream. The checkpoint only advances after the sink committed the
// window that ends there, and only contiguously.
package checkpoint

import (
	"context"
	"errors"
	"time"
)

// Checkpoint is one org's progress.
type Checkpoint struct {
	Org string `json:"org_id"`
	// End is the end of the last committed window: everything before it is in
	// the sink. Zero means nothing has been written yet.
	End time.Time `json:"end"`
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

// Store keeps checkpoints. Implementations are safe for concurrent use.
type Store interface {
	// Get returns the org's checkpoint, or ErrNotFound. A checkpoint that
	// exists but cannot be read or parsed is an error that names the object
	// and says how to repair it (never ErrNotFound).
	Get(ctx context.Context, org string) (Checkpoint, error)
	// Put writes cp atomically. cp.Version must be what Get returned (empty
	// for a new org); a store that supports compare-and-swap returns
	// ErrConflict if another writer moved it since. Put returns the new version.
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
)
