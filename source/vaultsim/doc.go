// Package vaultsim is a deterministic, fast simulator of the VaultTerm Events
// API (the contract it serves is in docs/vaultterm-api.md, "Simulator
// contract"), used by tests, demos and benchmarks in place of the real
// service.
//
// History is generated lazily: an event's content is a pure function of
// (seed, org, hour, index), so the same Config always serves the same events,
// and only a few rendered hours are held in memory whatever the span. Faults
// (429, 5xx, slow, cut, malformed, dup, late, offhost, redeliver, badts,
// revoke-after) are drawn from hashes of the seed and the exact request (or
// the event, for late, redeliver and badts), never from a shared random stream, so
// runs are reproducible under concurrency.
//
// Tests start it in-process:
//
//	sim := vaultsim.Start(t, vaultsim.Config{Seed: 1, Rate: 200})
//	// sim.URL is "http://127.0.0.1:PORT/api"; sim.Creds()[0].Token is org_1's token.
//	count, digest := sim.Truth("org_1", from, to)
//
// The offhost fault is implemented in the link profile only (the Link next
// URL points at Config.OffHost); dup only in the cursor profiles (not page).
// A redeliver copy has its original's id and content and a timestamp
// RedeliverDelay later, so it may land on a later page or in the next
// window; the truth holds each id once, at its original time.
//
// Imperfect-API options, all off in the zero Config:
//
//   - OmitFinalCursor: the last page of a cursor profile has no next_cursor
//     key (instead of null).
//   - PageCap, NoTotals, HasMore (page profile): per_page silently capped;
//     no total_pages; a has_more flag.
//   - LeftOpenBounds: queries are (from, to] instead of [from, to).
//   - SecondPrecision: event times are truncated to whole seconds, for
//     serving and for the truth alike (Server.AppendEvent renders them).
//   - ClockOffset: the API's clock runs Now()+ClockOffset, including the
//     Date header every response carries.
//
// Runtime controls, safe while requests are served, for tests that change
// the API between runs of a client: SetVisibleShare (an org sees only a
// deterministic share of its events), SetRetention (an org's events before a
// cut-off are gone), SetFailClosed (a credential authenticates but sees
// nothing). Truth, EventIDs and Events stay the final truth and ignore them;
// VisibleEventIDs is what the API serves under them.
package vaultsim
