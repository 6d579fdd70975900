package s3

import (
	"github.com/vaultsink/vaultsink/internal/s3client"
	"github.com/vaultsink/vaultsink/sinks"
)

// classify is s3client.Classify with the sink's marker of errors no retry
// can fix, sinks.ErrPermanent, on which the runner holds the org back.
func classify(err error, bucket, key, what string) error {
	return s3client.Classify(err, sinks.ErrPermanent, bucket, key, what)
}
