package s3

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/vaultsink/vaultsink/internal/s3client"
	"github.com/vaultsink/vaultsink/sinks"
)

// abortTimeout bounds the cleanup of an upload when the caller's context is
// already gone (shutdown): the abort must still reach S3.
const abortTimeout = 30 * time.Second

// objectParams are the per-object request settings shared by PutObject and
// CreateMultipartUpload.
type objectParams struct {
	bucket, key  string
	contentType  string
	metadata     map[string]string
	sse          types.ServerSideEncryption
	kmsKeyID     *string
	storageClass types.StorageClass
	tagging      *string
	// A conditional write: the object must still be the version whose
	// ETag is ifMatch, or not exist (ifNoneMatch "*"). Neither: any.
	ifMatch, ifNoneMatch *string
}

// partWriter is an io.Writer that streams into one S3 object. It buffers up
// to partSize bytes; the first full buffer starts a multipart upload, and each
// full buffer is uploaded while the next one fills (so memory is two parts).
// An object smaller than one part goes up as one PutObject at complete.
//
// io.Writer has no context, so the caller sets ctx before writing; a
// partWriter is used by one goroutine (its upload goroutine aside).
type partWriter struct {
	ctx      context.Context
	client   *s3.Client
	p        objectParams
	partSize int
	onPart   func(bytes int) // metrics hook, may be nil

	buf      []byte
	spare    []byte
	uploadID string
	parts    []types.CompletedPart
	next     int32 // next part number
	written  int64
	inflight chan partResult // result of the part being uploaded, nil if none
	err      error           // sticky: after an error every call fails
	closed   bool
}

func newPartWriter(ctx context.Context, client *s3.Client, p objectParams, partSize int) *partWriter {
	return &partWriter{ctx: ctx, client: client, p: p, partSize: partSize, next: 1}
}

// Write buffers p and uploads every full part.
func (w *partWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, errors.New("write after complete or abort")
	}
	n := len(p)
	for len(p) > 0 {
		if w.buf == nil {
			w.buf = w.takeBuffer()
		}
		room := w.partSize - len(w.buf)
		k := min(room, len(p))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == w.partSize {
			if err := w.flushPart(); err != nil {
				return n - len(p), err
			}
		}
	}
	w.written += int64(n)
	return n, nil
}

func (w *partWriter) takeBuffer() []byte {
	if w.spare != nil {
		b := w.spare[:0]
		w.spare = nil
		return b
	}
	return make([]byte, 0, w.partSize)
}

// flushPart waits for the part in flight, then starts uploading w.buf.
func (w *partWriter) flushPart() error {
	if err := w.wait(); err != nil {
		return err
	}
	if w.uploadID == "" {
		out, err := w.client.CreateMultipartUpload(w.ctx, &s3.CreateMultipartUploadInput{
			Bucket:               &w.p.bucket,
			Key:                  &w.p.key,
			ContentType:          aws.String(w.p.contentType),
			Metadata:             w.p.metadata,
			ServerSideEncryption: w.p.sse,
			SSEKMSKeyId:          w.p.kmsKeyID,
			StorageClass:         w.p.storageClass,
			Tagging:              w.p.tagging,
		})
		if err != nil {
			return w.fail(s3client.OpError("CreateMultipartUpload", err))
		}
		w.uploadID = aws.ToString(out.UploadId)
	}
	buf, num := w.buf, w.next
	w.buf = nil
	w.next++
	done := make(chan partResult, 1)
	w.inflight = done
	ctx := w.ctx
	go func() {
		// A bytes.Reader is seekable, so the SDK's retryer can resend the
		// body after a 5xx or a cut connection.
		out, err := w.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket:        &w.p.bucket,
			Key:           &w.p.key,
			UploadId:      &w.uploadID,
			PartNumber:    aws.Int32(num),
			Body:          bytes.NewReader(buf),
			ContentLength: aws.Int64(int64(len(buf))),
		})
		if err != nil {
			done <- partResult{err: uploadGone(s3client.OpError(fmt.Sprintf("UploadPart %d", num), err), w.p)}
			return
		}
		if w.onPart != nil {
			w.onPart(len(buf))
		}
		// The goroutine touches no field of w: the result travels through
		// the channel, and wait applies it on the writer's goroutine.
		done <- partResult{buf: buf, part: types.CompletedPart{
			ETag: out.ETag, PartNumber: aws.Int32(num),
			ChecksumCRC32: out.ChecksumCRC32, ChecksumCRC32C: out.ChecksumCRC32C,
			ChecksumCRC64NVME: out.ChecksumCRC64NVME,
			ChecksumSHA1:      out.ChecksumSHA1, ChecksumSHA256: out.ChecksumSHA256,
		}}
	}()
	return nil
}

// partResult is what an upload goroutine reports: the completed part and
// its buffer for reuse, or an error.
type partResult struct {
	err  error
	part types.CompletedPart
	buf  []byte
}

// wait blocks until the part in flight (if any) finished and records it.
func (w *partWriter) wait() error {
	if w.inflight == nil {
		return w.err
	}
	r := <-w.inflight
	w.inflight = nil
	if r.err != nil {
		return w.fail(r.err)
	}
	w.parts = append(w.parts, r.part)
	w.spare = r.buf
	return w.err
}

func (w *partWriter) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return w.err
}

// complete makes the object visible: a PutObject if it never outgrew one
// part, else the last part and CompleteMultipartUpload. On error the caller
// must call abort.
func (w *partWriter) complete() (etag string, err error) {
	if w.closed {
		return "", errors.New("complete after complete or abort")
	}
	if w.err != nil {
		return "", w.err
	}
	if w.uploadID == "" {
		body := w.buf
		out, err := w.client.PutObject(w.ctx, &s3.PutObjectInput{
			Bucket:               &w.p.bucket,
			Key:                  &w.p.key,
			Body:                 bytes.NewReader(body),
			ContentLength:        aws.Int64(int64(len(body))),
			ContentType:          aws.String(w.p.contentType),
			Metadata:             w.p.metadata,
			ServerSideEncryption: w.p.sse,
			SSEKMSKeyId:          w.p.kmsKeyID,
			StorageClass:         w.p.storageClass,
			Tagging:              w.p.tagging,
			IfMatch:              w.p.ifMatch,
			IfNoneMatch:          w.p.ifNoneMatch,
		})
		if err != nil {
			// A condition that fails on a retry may have failed against our
			// own first attempt, which succeeded but lost its answer: the
			// upload token tells.
			if cerr := conditionFailed(s3client.OpError("PutObject", err), w.p); errors.Is(cerr, sinks.ErrFenced) {
				if tag, ok := w.completedByUs(); ok {
					w.closed = true
					w.buf = nil
					return tag, nil
				}
				return "", w.fail(cerr)
			}
			return "", w.fail(s3client.OpError("PutObject", err))
		}
		w.closed = true
		w.buf = nil
		return aws.ToString(out.ETag), nil
	}
	if len(w.buf) > 0 {
		if err := w.flushPart(); err != nil {
			return "", err
		}
	}
	if err := w.wait(); err != nil {
		return "", err
	}
	sort.Slice(w.parts, func(i, j int) bool { return *w.parts[i].PartNumber < *w.parts[j].PartNumber })
	out, err := w.client.CompleteMultipartUpload(w.ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          &w.p.bucket,
		Key:             &w.p.key,
		UploadId:        &w.uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: w.parts},
		IfMatch:         w.p.ifMatch,
		IfNoneMatch:     w.p.ifNoneMatch,
	})
	if err != nil {
		// A retried Complete whose first attempt succeeded but lost its
		// response finds the upload gone. The object's upload token, set at
		// CreateMultipartUpload, tells whether it is ours.
		var nsu *types.NoSuchUpload
		if errors.As(err, &nsu) || s3client.APICode(err) == "NoSuchUpload" {
			if tag, ok := w.completedByUs(); ok {
				w.closed = true
				return tag, nil
			}
			return "", w.fail(uploadGone(s3client.OpError("CompleteMultipartUpload", err), w.p))
		}
		if cerr := conditionFailed(s3client.OpError("CompleteMultipartUpload", err), w.p); errors.Is(cerr, sinks.ErrFenced) {
			if tag, ok := w.completedByUs(); ok {
				w.closed = true
				return tag, nil
			}
			return "", w.fail(cerr)
		}
		return "", w.fail(s3client.OpError("CompleteMultipartUpload", err))
	}
	w.closed = true
	w.uploadID = ""
	w.buf, w.spare = nil, nil
	return aws.ToString(out.ETag), nil
}

func (w *partWriter) completedByUs() (string, bool) {
	token := w.p.metadata[metaUpload]
	if token == "" {
		return "", false
	}
	out, err := w.client.HeadObject(w.ctx, &s3.HeadObjectInput{Bucket: &w.p.bucket, Key: &w.p.key})
	if err != nil || out.Metadata[metaUpload] != token {
		return "", false
	}
	w.uploadID = ""
	return aws.ToString(out.ETag), true
}

// abort discards the upload. It runs with a fresh context when ctx is
// already cancelled so a shutdown does not leave an incomplete upload.
func (w *partWriter) abort(ctx context.Context) error {
	if w.inflight != nil {
		<-w.inflight
		w.inflight = nil
	}
	w.closed = true
	w.buf, w.spare = nil, nil
	if w.uploadID == "" {
		return nil
	}
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
	}
	_, err := w.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
		Bucket: &w.p.bucket, Key: &w.p.key, UploadId: &w.uploadID,
	})
	if err != nil && s3client.APICode(err) != "NoSuchUpload" {
		return s3client.OpError("AbortMultipartUpload", err)
	}
	w.uploadID = ""
	return nil
}

// conditionFailed marks a conditional write the store refused (412
// PreconditionFailed, 409 ConditionalRequestConflict, or the object gone
// under If-Match) with sinks.ErrFenced: another writer changed the object.
func conditionFailed(err error, p objectParams) error {
	if p.ifMatch == nil && p.ifNoneMatch == nil {
		return err
	}
	code, status := s3client.APICode(err), s3client.HTTPStatus(err)
	switch {
	case code == "PreconditionFailed" || status == http.StatusPreconditionFailed,
		code == "ConditionalRequestConflict" || status == http.StatusConflict,
		p.ifMatch != nil && (code == "NoSuchKey" || status == http.StatusNotFound):
		return fmt.Errorf("%w: s3://%s/%s changed since this unit read it (another writer committed the window): %w", sinks.ErrFenced, p.bucket, p.key, err)
	}
	return err
}

// uploadGone marks a multipart upload that vanished under a conditional
// write with sinks.ErrFenced: another writer committed the window and
// aborted the uploads it found of the same key (Sink.abortStale).
func uploadGone(err error, p objectParams) error {
	if p.ifMatch == nil && p.ifNoneMatch == nil {
		return err
	}
	var nsu *types.NoSuchUpload
	if errors.As(err, &nsu) || s3client.APICode(err) == "NoSuchUpload" {
		return fmt.Errorf("%w: the multipart upload of s3://%s/%s was aborted by another writer, which committed the window: %w", sinks.ErrFenced, p.bucket, p.key, err)
	}
	return err
}
