// Package s3client is vaultsink's one S3 client: its setup (credentials,
// endpoint, path style, checksums, retries, per-attempt timeouts, the SDK's
// log lines through slog) and the classification of its errors, used by the
// S3 sink and the S3 checkpoint store so both accept the same settings and
// report failures the same way.
package s3client
