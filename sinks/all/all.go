// Package all registers every sink and checkpoint store type; import it for
// its side effects, as cmd/vaultsink does.
package all

import (
	_ "github.com/vaultsink/vaultsink/checkpoint" // file store (and s3 store)
	_ "github.com/vaultsink/vaultsink/sinks/local"
)
