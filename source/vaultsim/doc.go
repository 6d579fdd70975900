// Package vaultsim is a deterministic, fast simulator of the VaultTerm Events
// API (the "Simulator contract" of events-api.md), used by tests, demos and
// benchmarks in place of the real service.
//
// History is generated lazily: an event's content is a pure function of
// (seed, org, hour, index), so the same Config always serves the same events,
// and only a few rendered hours are held in memory whatever the span. Faults
// (429, 5xx, slow, cut, malformed, dup, late, offhost, revoke-after) are
// drawn from hashes of the seed and the exact request, never from a shared
// random stream, so runs are reproducible under concurrency.
//
// Tests start it in-process:
//
//	sim := vaultsim.Start(t, vaultsim.Config{Seed: 1, Rate: 200})
//	// sim.URL is "http://127.0.0.1:PORT/api"; sim.Creds()[0].Token is org_1's token.
//	count, digest := sim.Truth("org_1", from, to)
//
// The offhost fault is implemented in the link profile only (the Link next
// URL points at Config.OffHost); dup only in the cursor profiles (not page).
package vaultsim
