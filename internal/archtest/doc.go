// Package archtest holds the test that keeps the package layout of
// docs/architecture.md true: the import graph drawn there is generated from
// `go list`, and the layers of the data path may only import downwards.
//
// Regenerate the graph after moving packages:
//
//	make architecture
package archtest
