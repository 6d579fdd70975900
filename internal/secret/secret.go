// Package secret holds credentials in a type that never prints.
//
// A Secret formats as "<redacted>" through fmt (every verb), encoding/json,
// YAML and slog, so a token cannot leak through a log line, an error, a panic
// or --dry-run output by accident. The only way to read it is Reveal, which
// callers use at the one place the value goes on the wire.
package secret

import (
	"fmt"
	"log/slog"
)

const redacted = "<redacted>"

// Secret is a credential value that formats as <redacted>.
//
// The value sits behind a pointer so that even reflection-based printing of a
// struct that holds a Secret in an unexported field (where fmt cannot call
// methods) shows an address, never the value.
type Secret struct{ p *string }

// New wraps s.
func New(s string) Secret { return Secret{p: &s} }

// Reveal returns the value. Call it only where the value is sent.
func (s Secret) Reveal() string {
	if s.p == nil {
		return ""
	}
	return *s.p
}

// Empty reports whether no value is set.
func (s Secret) Empty() bool { return s.Reveal() == "" }

// String implements fmt.Stringer.
func (s Secret) String() string { return redacted }

// GoString implements fmt.GoStringer (the %#v verb).
func (s Secret) GoString() string { return redacted }

// Format implements fmt.Formatter so that every verb, including %x and %q, redacts.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler (YAML, TOML and others use it).
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// UnmarshalText implements encoding.TextUnmarshaler so config decoders can
// fill a Secret from a string.
func (s *Secret) UnmarshalText(b []byte) error {
	*s = New(string(b))
	return nil
}

// IsZero reports an unset secret, so YAML `omitempty` leaves it out.
func (s Secret) IsZero() bool { return s.Empty() }
