package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultsink/vaultsink/internal/s3client"
	"github.com/vaultsink/vaultsink/sinks/pqenc"
	"github.com/vaultsink/vaultsink/sinks/pqread"
)

// EventIDs calls fn with every event_id in w's object; a window without an
// object has none. The object is downloaded to a temporary file and read one
// column page at a time, so memory does not grow with the window.
func (s *Sink) EventIDs(ctx context.Context, w event.Window, fn func(id string) error) error {
	key := s.Key(w)
	f, _, err := s.download(ctx, key, fmt.Sprintf("org %s, window %s", w.Org, w.Range()))
	if err != nil || f == nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := pqread.IDs(ctx, f, fn); err != nil {
		return fmt.Errorf("read s3://%s/%s (org %s, window %s): %w", s.cfg.Bucket, key, w.Org, w.Range(), err)
	}
	return nil
}

// Stat reports whether w's object exists and how many events it holds, from
// its metadata or, for multipart objects, its Parquet footer (two ranged
// reads). Backfill uses it to skip windows already written.
func (s *Sink) Stat(ctx context.Context, w event.Window) (exists bool, events int64, err error) {
	key := s.Key(w)
	what := fmt.Sprintf("org %s, window %s", w.Org, w.Range())
	head, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.cfg.Bucket, Key: &key})
	if err != nil {
		if s3client.IsNotFound(err) {
			return false, 0, nil
		}
		return false, 0, classify(s3client.OpError("HeadObject", err), s.cfg.Bucket, key, what)
	}
	if v, ok := head.Metadata[metaEvents]; ok {
		n, perr := strconv.ParseInt(v, 10, 64)
		if perr == nil {
			return true, n, nil
		}
	}
	ra := &rangeReader{ctx: ctx, client: s.client, bucket: s.cfg.Bucket, key: key,
		size: aws.ToInt64(head.ContentLength), etag: aws.ToString(head.ETag)}
	pr, err := file.NewParquetReader(ra)
	if err != nil {
		if ra.err != nil {
			return true, 0, classify(ra.err, s.cfg.Bucket, key, what)
		}
		return true, 0, fmt.Errorf("s3://%s/%s (%s): read parquet footer: %w", s.cfg.Bucket, key, what, err)
	}
	defer pr.Close()
	if v := pr.MetaData().KeyValueMetadata().FindValue(pqenc.MetaEventCount); v != nil {
		if n, perr := strconv.ParseInt(*v, 10, 64); perr == nil {
			return true, n, nil
		}
	}
	return true, pr.NumRows(), nil
}

// rangeReader reads an object with ranged GETs pinned to one ETag, so a
// concurrent replace of the object is an error, not a torn read.
type rangeReader struct {
	ctx         context.Context
	client      *s3.Client
	bucket, key string
	etag        string
	size, off   int64
	err         error
}

func (r *rangeReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= r.size {
		return 0, io.EOF
	}
	end := min(off+int64(len(p)), r.size) - 1
	out, err := r.client.GetObject(r.ctx, &s3.GetObjectInput{
		Bucket: &r.bucket, Key: &r.key, IfMatch: &r.etag,
		Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, end)),
	})
	if err != nil {
		r.err = s3client.OpError("GetObject", err)
		return 0, r.err
	}
	defer out.Body.Close()
	n, err := io.ReadFull(out.Body, p[:end-off+1])
	if err == nil && n < len(p) {
		err = io.EOF
	}
	return n, err
}

func (r *rangeReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	}
	if offset < 0 {
		return 0, errors.New("seek before start")
	}
	r.off = offset
	return offset, nil
}

func (r *rangeReader) Read(p []byte) (int, error) {
	n, err := r.ReadAt(p, r.off)
	r.off += int64(n)
	return n, err
}

// Upload is an incomplete multipart upload.
type Upload struct {
	Key       string
	UploadID  string
	Initiated time.Time
}

// IncompleteUploads lists multipart uploads started under the sink's prefix
// and never completed or aborted. After a clean run there are none.
func (s *Sink) IncompleteUploads(ctx context.Context) ([]Upload, error) {
	return ListIncompleteUploads(ctx, s.client, s.cfg.Bucket, s.cfg.Prefix+"/")
}

// ListIncompleteUploads lists the incomplete multipart uploads under prefix.
func ListIncompleteUploads(ctx context.Context, client *s3.Client, bucket, prefix string) ([]Upload, error) {
	var out []Upload
	in := &s3.ListMultipartUploadsInput{Bucket: &bucket, Prefix: &prefix}
	for {
		page, err := client.ListMultipartUploads(ctx, in)
		if err != nil {
			if s3client.APICode(err) == "NoSuchUpload" {
				return out, nil // gofakes3's answer when there are none
			}
			return nil, classify(s3client.OpError("ListMultipartUploads", err), bucket, prefix, "")
		}
		for _, u := range page.Uploads {
			out = append(out, Upload{Key: aws.ToString(u.Key), UploadID: aws.ToString(u.UploadId), Initiated: aws.ToTime(u.Initiated)})
		}
		if !aws.ToBool(page.IsTruncated) {
			return out, nil
		}
		in.KeyMarker, in.UploadIdMarker = page.NextKeyMarker, page.NextUploadIdMarker
	}
}
