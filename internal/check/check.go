// Package check is what the parts of vaultsink (a sink, a checkpoint
// store) report to `vaultsink check-config --connect`: one Result per
// finding, each with a hint that names what to check when it failed.
//
// A check creates nothing (no directory, dataset or table) and writes
// nothing but probe objects it removes again, and it goes on past a failed
// finding wherever the next one can still tell something.
package check

import "fmt"

// Status is how a finding went.
type Status int

// Statuses. Warn is a finding that does not stop the part from working but
// weakens a guarantee (a store that ignores conditional writes); only Fail
// makes check-config exit 1.
const (
	OK Status = iota
	Warn
	Fail
)

func (s Status) String() string {
	switch s {
	case OK:
		return "ok"
	case Warn:
		return "warn"
	}
	return "FAIL"
}

// Result is one finding.
type Result struct {
	Status Status
	// Msg says what was checked and found: "bucket b: exists", or what
	// failed and why.
	Msg string
	// Hint names what to check for a Warn or Fail finding: the config key
	// (its full path, e.g. sink.bucket), the permission, the command.
	Hint string
}

// OKf is a finding that went well.
func OKf(format string, args ...any) Result {
	return Result{Status: OK, Msg: fmt.Sprintf(format, args...)}
}

// Warnf is a finding that weakens a guarantee; hint says what to do.
func Warnf(hint, format string, args ...any) Result {
	return Result{Status: Warn, Msg: fmt.Sprintf(format, args...), Hint: hint}
}

// Failf is a failed finding; hint says what to check.
func Failf(hint, format string, args ...any) Result {
	return Result{Status: Fail, Msg: fmt.Sprintf(format, args...), Hint: hint}
}

// Failed reports whether any of rs failed.
func Failed(rs []Result) bool {
	for _, r := range rs {
		if r.Status == Fail {
			return true
		}
	}
	return false
}
