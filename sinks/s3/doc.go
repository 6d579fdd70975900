// Package s3 is the S3 sink: one Parquet object per (org, window) at the
// deterministic key <prefix>/<sinks.ObjectKey(w)>, streamed into a multipart
// upload part by part so memory is bounded by a part, not by the window.
//
// The object appears only when CompleteMultipartUpload (or, for a window
// smaller than one part, a single PutObject) succeeds, and it replaces the
// object of an earlier run of the same window. A failed or abandoned unit
// aborts its upload. As a safety net for uploads a killed process leaves
// behind, configure the bucket with a lifecycle rule such as:
//
//	{"Rules":[{"ID":"abort-incomplete-mpu","Status":"Enabled","Filter":{"Prefix":""},
//	  "AbortIncompleteMultipartUpload":{"DaysAfterInitiation":1}}]}
//
// Quarantined records go, as JSON lines, under a sibling quarantine prefix
// that readers of the table never scan.
//
// The S3 client, its settings (ClientConfig) and the classification of its
// errors are internal/s3client's, which the S3 checkpoint store shares.
//
// Permissions the sink needs on arn:aws:s3:::<bucket>/<prefix>/* and the
// quarantine prefix: s3:PutObject, s3:AbortMultipartUpload, s3:GetObject
// (verify, backfill skip), and s3:ListBucket / s3:ListBucketMultipartUploads
// on the bucket.
package s3
