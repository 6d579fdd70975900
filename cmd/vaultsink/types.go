package main

// The sink and checkpoint store types this binary offers, registered by
// their packages' init: the one place that chooses them. A new sink is a
// package implementing sinks.Config and one import here.
import (
	_ "github.com/vaultsink/vaultsink/checkpoint" // the file and s3 stores
	_ "github.com/vaultsink/vaultsink/sinks/bigquery"
	_ "github.com/vaultsink/vaultsink/sinks/local"
	_ "github.com/vaultsink/vaultsink/sinks/s3"
)
