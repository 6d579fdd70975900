// Package all registers every sink and checkpoint store type; import it for
// its side effects, as cmd/vaultsink does.
package all

import (
	_ "github.com/vaultsink/vaultsink/checkpoint" // file and s3 stores
	_ "github.com/vaultsink/vaultsink/sinks/bigquery"
	_ "github.com/vaultsink/vaultsink/sinks/local"
	_ "github.com/vaultsink/vaultsink/sinks/s3"
)
