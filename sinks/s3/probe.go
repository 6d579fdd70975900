package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/vaultsink/vaultsink/internal/s3client"
	"github.com/vaultsink/vaultsink/sinks"
)

// Conditional writes (If-None-Match, If-Match) are what keeps a stale
// writer from overwriting a window another committed: AWS S3 honours them
// on PutObject and CompleteMultipartUpload, some S3-compatible stores
// ignore them on one or both. ProbeConditionalWrites finds out by trying,
// once at start-up, on a scratch object under the table prefix's hidden
// "_vaultsink" folder (Hive readers skip it; it is removed afterwards).

// ConditionalWrites is what the store honours.
type ConditionalWrites struct {
	Put, Multipart bool
}

// Guarantee says what fencing a sink on such a store gives.
func (c ConditionalWrites) Guarantee() string {
	switch {
	case c.Put && c.Multipart:
		return "a stale writer's commit is refused by the store (conditional writes)"
	case c.Put:
		return "the store ignores conditions on CompleteMultipartUpload: a unit larger than part_size from a stale writer is refused only by the lease check right before its commit"
	default:
		return "the store ignores conditional writes: a stale writer's commit is refused only by the lease check right before it"
	}
}

// ProbeConditionalWrites writes a scratch object twice under If-None-Match
// "*", with PutObject and with a one-part multipart upload: a store that
// honours the condition refuses the second of each.
func (s *Sink) ProbeConditionalWrites(ctx context.Context) (ConditionalWrites, error) {
	var c ConditionalWrites
	var tok [8]byte
	_, _ = rand.Read(tok[:])
	key := s.cfg.Prefix + "/_vaultsink/probe-" + hex.EncodeToString(tok[:])
	defer func() {
		_, _ = s.client.DeleteObject(context.WithoutCancel(ctx), &s3.DeleteObjectInput{Bucket: &s.cfg.Bucket, Key: &key})
	}()
	put := func() error {
		_, err := s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.cfg.Bucket, Key: &key,
			Body: bytes.NewReader([]byte("probe")), IfNoneMatch: aws.String("*")})
		return err
	}
	if err := put(); err != nil {
		return c, classify(s3client.OpError("PutObject", err), s.cfg.Bucket, key, "the conditional-write probe")
	}
	err := put()
	c.Put = refused(err)
	if err != nil && !c.Put {
		return c, classify(s3client.OpError("PutObject", err), s.cfg.Bucket, key, "the conditional-write probe")
	}
	up, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: &s.cfg.Bucket, Key: &key})
	if err != nil {
		return c, classify(s3client.OpError("CreateMultipartUpload", err), s.cfg.Bucket, key, "the conditional-write probe")
	}
	abort := func() {
		_, _ = s.client.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{Bucket: &s.cfg.Bucket, Key: &key, UploadId: up.UploadId})
	}
	part, err := s.client.UploadPart(ctx, &s3.UploadPartInput{Bucket: &s.cfg.Bucket, Key: &key, UploadId: up.UploadId,
		PartNumber: aws.Int32(1), Body: bytes.NewReader([]byte("probe")), ContentLength: aws.Int64(5)})
	if err != nil {
		abort()
		return c, classify(s3client.OpError("UploadPart", err), s.cfg.Bucket, key, "the conditional-write probe")
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: &s.cfg.Bucket, Key: &key, UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{{ETag: part.ETag, PartNumber: aws.Int32(1)}}},
		IfNoneMatch:     aws.String("*")})
	c.Multipart = refused(err)
	if err != nil && !c.Multipart {
		abort()
		return c, classify(s3client.OpError("CompleteMultipartUpload", err), s.cfg.Bucket, key, "the conditional-write probe")
	}
	if c.Multipart {
		abort()
	}
	return c, nil
}

// refused reports whether err is a store's refusal of a failed condition.
func refused(err error) bool {
	return err != nil && errors.Is(conditionFailed(err, objectParams{ifNoneMatch: aws.String("*")}), sinks.ErrFenced)
}

// ProbeFencing runs ProbeConditionalWrites and says what it found, for the
// start-up log.
func (s *Sink) ProbeFencing(ctx context.Context) (string, error) {
	c, err := s.ProbeConditionalWrites(ctx)
	if err != nil {
		return "", err
	}
	s.m.conditional.WithLabelValues("put").Set(b2f(c.Put))
	s.m.conditional.WithLabelValues("multipart").Set(b2f(c.Multipart))
	return fmt.Sprintf("s3://%s/%s: %s", s.cfg.Bucket, strings.TrimSuffix(s.cfg.Prefix, "/"), c.Guarantee()), nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
