//go:build race

package bufpool

// debug: race-detector builds (`make test`) check every buffer's lifetime.
const debug = true
