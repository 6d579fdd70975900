//go:build !race

package bufpool

const debug = false
