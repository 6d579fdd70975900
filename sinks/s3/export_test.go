package s3

import (
	"context"
	"io"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// PartWriter exposes the streaming multipart writer to the benchmarks.
type PartWriter interface {
	io.Writer
	Complete() (string, error)
	Abort(ctx context.Context) error
}

type partWriterForTest struct{ *partWriter }

func (w partWriterForTest) Complete() (string, error)       { return w.complete() }
func (w partWriterForTest) Abort(ctx context.Context) error { return w.abort(ctx) }

// NewPartWriterForTest returns the writer the sink streams Parquet into.
func NewPartWriterForTest(ctx context.Context, client *s3.Client, bucket, key string, partSize int) PartWriter {
	return partWriterForTest{newPartWriter(ctx, client, objectParams{bucket: bucket, key: key, metadata: map[string]string{}}, partSize)}
}
