// Package sinks defines the Sink interface every destination implements and
// the registry that builds a sink from its configuration.
//
// The contract that makes vaultsink exactly-once: a sink writes one unit per
// event.Window whose identity is a pure function of the window and the sink's
// configuration (never of the clock, a random id or a counter), nothing of a
// unit is visible to readers before Commit returns nil, and committing the
// same window again never adds a second copy of a row and never drops one:
// the unit afterwards holds every row it held before (the held copy of an
// id wins) plus the rows the new commit brought.
package sinks

import (
	"context"
	"errors"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/vaultsink/vaultsink/internal/check"
)

// Sink is a destination for windows of events.
//
// Implementations are safe for concurrent use by several goroutines, each
// working on a different window. Two units for the same window must never be
// open at once; the caller (the planner) guarantees it.
type Sink interface {
	// Open starts the unit for w. Nothing is visible until Commit. A sink
	// that reads back what it holds (local, S3) returns a unit that also
	// implements HeldUnit.
	Open(ctx context.Context, w event.Window) (Unit, error)
	// Identity names where the sink writes (a directory, a bucket and
	// prefix, a table), never a secret. A checkpoint records it, so that a
	// checkpoint made for one sink is not silently applied to another.
	Identity() string
	// Close releases clients and connections. Units still open are aborted.
	Close() error
}

// Unit is one window being written. Call Write and Quarantine any number of
// times, then exactly one of Commit or Abort. Abort after Commit is a no-op,
// so `defer u.Abort(ctx)` is the idiom. A Unit is used by one goroutine.
type Unit interface {
	// Write appends a batch in event.Schema. The caller keeps ownership of
	// rec and may release it as soon as Write returns.
	Write(ctx context.Context, rec arrow.RecordBatch) error
	// Quarantine records a record that could not be mapped.
	Quarantine(ctx context.Context, q event.Quarantined) error
	// Commit makes the window's unit visible atomically. The unit then holds
	// the rows it held before and the rows written, each id once (the held
	// copy wins): an audit log only grows, so a re-pull that returns less
	// (a token that lost scope, a retention cut, an empty answer) never
	// removes a row; Result.Vanished reports what it did not return. When
	// nothing new was written the data is left as it is. The window's
	// quarantine is replaced by the records quarantined in this unit (none
	// removes it). After Commit returns nil the data is durable.
	Commit(ctx context.Context) (Result, error)
	// Abort discards everything written; nothing becomes visible.
	Abort(ctx context.Context) error
}

// Result describes a committed unit.
type Result struct {
	Events      int64  // rows the window's unit holds after the commit
	New         int64  // rows this commit added
	Quarantined int64  // records in the quarantine unit
	Bytes       int64  // bytes written by the commit (0 when the data was left as it was)
	Location    string // where the data is: path, s3:// URL or table; "" when the window holds nothing
	// Vanished counts rows the sink held for the window whose ids the
	// walk did not return (they are kept). Changed counts held rows whose
	// id came back with other content (the held copy is kept).
	Vanished, Changed int64
}

// HeldUnit is implemented by the units of sinks that read back what they
// hold for the window when it is opened (local, S3). The runner hands the
// set to the window's walk (event.Known.Held), which skips the held ids
// and marks the ones it meets; the unit adds the held rows back at Commit
// when anything new was written.
type HeldUnit interface {
	// Held is what the sink held for the window at Open; nil when nothing.
	Held() *event.HeldSet
}

// Fence is the proof a commit carries that its writer still holds the org:
// the checkpoint lease's owner and epoch at the time the unit was opened.
type Fence struct {
	Owner string
	Epoch int64
}

// FencedUnit is implemented by units whose commit can check the writer's
// fence itself (BigQuery: a per-org epoch row read and updated in the
// commit's transaction). The runner calls SetFence right after Open.
type FencedUnit interface {
	SetFence(Fence)
}

// FencingProber is implemented by sinks whose fencing depends on what the
// store honours (S3's conditional writes): ProbeFencing finds out once, at
// start-up, and says what guarantee remains, for the log.
type FencingProber interface {
	ProbeFencing(ctx context.Context) (string, error)
}

// ErrFenced marks a commit refused because another writer took the window
// or the org over since the unit opened (a newer fence epoch, an object
// changed under a conditional write). Nothing of the unit was written; the
// runner stops the org and names the lease's new owner.
var ErrFenced = errors.New("fenced out by another writer")

// NearDeduper is implemented by sinks whose commit itself drops the ids
// that the adjacent windows hold (BigQuery, in its INSERT), so the runner
// need not read the adjacent units' ids through Reader.
type NearDeduper interface {
	DedupsNearWindows()
}

// BatchCommitter is implemented by sinks whose commits are expensive or
// rate-limited (BigQuery: load-job and DML quotas). The planner then gathers
// up to MaxBatch consecutive units of an org and commits them together; the
// checkpoint advances only after CommitBatch returns nil.
type BatchCommitter interface {
	MaxBatch() int
	// CommitBatch commits all units atomically or none of them.
	CommitBatch(ctx context.Context, units []Unit) ([]Result, error)
}

// Reader lists what a sink holds for a window, for `vaultsink verify`.
type Reader interface {
	// EventIDs calls fn with every event_id stored for w, duplicates included,
	// in no particular order.
	EventIDs(ctx context.Context, w event.Window, fn func(id string) error) error
}

// Inventory is implemented by sinks that can list what they hold for an org
// without the window arithmetic sync uses: `vaultsink verify` reads the sink
// through it, so that it can disagree with sync (a unit under a key sync
// would not construct, a unit of another window size, a row outside its
// unit's range, the same id in two units).
type Inventory interface {
	// Units lists every data unit of org under the sink's root whose range
	// may intersect [from, to): any key, any window size. Window is the
	// range the unit records about itself (a Parquet footer), not the one
	// its key suggests. A unit that cannot be read is listed with Err set.
	// A sink without units (BigQuery) lists the table as one unit covering
	// [from, to).
	Units(ctx context.Context, org string, from, to time.Time) ([]UnitInfo, error)
	// UnitRows calls fn with the event_id and timestamp of every row the
	// unit holds (for a table: of the org's rows in the unit's range).
	UnitRows(ctx context.Context, u UnitInfo, fn func(id string, ts time.Time) error) error
	// QuarantinedIn calls fn with every quarantined record the sink stores
	// for org whose window starts in [from, to).
	QuarantinedIn(ctx context.Context, org string, from, to time.Time, fn func(event.Quarantined) error) error
}

// Rewriter is implemented by sinks whose units are files or objects (local,
// S3): `vaultsink rewindow` rewrites an org's units into another window size
// through it. A rewrite never shows a row twice to a Hive reader: the new
// units are staged where readers do not look, the old units removed, then
// the staged ones published. A crash anywhere is repaired by running the
// rewrite again, which reads staged units as well as published ones.
type Rewriter interface {
	Inventory
	// Rows calls fn with every row batch of a unit (published or staged),
	// in event.Schema. fn must not keep the batch.
	Rows(ctx context.Context, u UnitInfo, fn func(arrow.RecordBatch) error) error
	// Staged lists the units of org a rewrite staged and did not publish.
	Staged(ctx context.Context, org string) ([]UnitInfo, error)
	// Stage writes the unit of w where readers do not look, replacing an
	// earlier staged unit of w, atomically; fill writes its rows.
	Stage(ctx context.Context, w event.Window, fill func(write func(arrow.RecordBatch) error) error) (rows int64, err error)
	// Publish makes w's staged unit its unit, replacing any unit at w's key.
	Publish(ctx context.Context, w event.Window) error
	// Remove deletes a published or staged unit.
	Remove(ctx context.Context, u UnitInfo) error
}

// UnitInfo describes one unit an Inventory found.
type UnitInfo struct {
	Key    string       // path or object key (a table name for BigQuery)
	Window event.Window // what the unit records about itself; zero if it records nothing
	// KeyWindow is the window the key names when it is one of vaultsink's
	// (sinks.ObjectKey); zero for another name.
	KeyWindow event.Window
	Rows      int64
	Hidden    bool  // a temp file or object Hive readers skip
	Staged    bool  // staged by a rewrite, not published (Rewriter)
	Err       error // the unit could not be read
}

// ErrPermanent marks errors that retrying cannot fix (access denied, bad
// configuration, incompatible schema). Wrap it; test with errors.Is.
var ErrPermanent = errors.New("permanent sink error")

// Config is one sink type's configuration section (`sink:` in the YAML). Its
// concrete type lives in the sink's package and builds the sink: this is the
// only way a sink is chosen. A Config may also implement Defaulter and
// Validator; the config loader calls them.
type Config interface {
	Build(ctx context.Context, env Env) (Sink, error)
}

// Defaulter fills unset fields with defaults; called before Validate.
type Defaulter interface{ SetDefaults() }

// Validator checks a section. Errors name the field (relative to the
// section, e.g. "path") and the bad value.
type Validator interface{ Validate() error }

// Stater is implemented by sinks that can tell cheaply whether a window's
// unit exists (a footer or object metadata), so backfill can resume.
type Stater interface {
	Stat(ctx context.Context, w event.Window) (exists bool, events int64, err error)
}

// Checker is implemented by a sink type's Config: it checks, from the
// configuration alone and without building the sink, that the sink it
// builds would work (`vaultsink check-config --connect`). Check creates
// nothing (no directory, dataset or table) and writes nothing but probe
// objects it removes again; it reports every finding, going on past a
// failed one where the next can still tell something. section is the
// section's path in the config file ("sink", "orgs[2].sink"), which the
// hints name keys under.
type Checker interface {
	Check(ctx context.Context, section string) []check.Result
}
