//go:build !race

package sinktest

const raceEnabled = false
