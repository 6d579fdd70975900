// Package metrics holds the one helper every package uses to put its
// Prometheus collectors on the daemon's registry.
package metrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Register registers c on reg and returns it; when an identical collector is
// already registered (a second sink of the same type, a test reusing a
// registry) it returns that one so both share the series. Any other
// registration error is a naming bug in vaultsink and panics.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic(err)
	}
	return c
}
