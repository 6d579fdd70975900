//go:build race

package sinktest

// raceEnabled skips the large-window memory test: the race detector makes it
// ~15x slower and changes the heap it measures.
const raceEnabled = true
