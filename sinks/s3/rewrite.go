package s3

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/vaultsink/vaultsink/internal/s3client"
	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/sinks/pqenc"
	"github.com/vaultsink/vaultsink/sinks/pqread"
)

var _ sinks.Rewriter = (*Sink)(nil)

// stagingPrefix is where a rewrite stages units: a sibling of the table
// prefix, like the quarantine ("vaultterm/events" stages under
// "vaultterm/_rewindow/events"), so readers of the table never list them.
func (s *Sink) stagingPrefix() string {
	p := s.cfg.Prefix
	if i := strings.LastIndex(p, "/"); i >= 0 {
		return p[:i] + "/_rewindow/" + p[i+1:]
	}
	return "_rewindow/" + p
}

// objectKey is the full key of a unit: Key is relative to the table prefix,
// or to the staging prefix for a staged unit.
func (s *Sink) objectKey(u sinks.UnitInfo) string {
	if u.Staged {
		return s.stagingPrefix() + "/" + u.Key
	}
	return s.cfg.Prefix + "/" + u.Key
}

// Rows downloads u's object to a temp file and calls fn with every row batch.
func (s *Sink) Rows(ctx context.Context, u sinks.UnitInfo, fn func(arrow.RecordBatch) error) error {
	return s.withObject(ctx, s.objectKey(u), "a unit to rewrite", func(f *os.File) error {
		return pqread.Rows(ctx, f, fn)
	})
}

// Staged lists the units of org under the staging prefix.
func (s *Sink) Staged(ctx context.Context, org string) ([]sinks.UnitInfo, error) {
	if org == "" || strings.Contains(org, "/") {
		return nil, fmt.Errorf("org %q is not usable as a key element", org)
	}
	var out []sinks.UnitInfo
	err := s.list(ctx, s.stagingPrefix()+"/org_id="+org+"/", func(o object) error {
		rel := strings.TrimPrefix(o.key, s.stagingPrefix()+"/")
		u := sinks.UnitInfo{Key: rel, Hidden: true, Staged: true}
		u.KeyWindow, _ = sinks.ParseObjectKey(rel)
		f, err := s.footer(ctx, o)
		if err != nil {
			u.Err = err
		} else {
			u.Window, u.Rows = f.Window, f.Rows
		}
		out = append(out, u)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the staged units of org %s: %w", org, err)
	}
	return out, nil
}

// Stage uploads w's unit under the staging prefix (one PutObject or a
// multipart upload: the object appears whole or not at all).
func (s *Sink) Stage(ctx context.Context, w event.Window, fill func(write func(arrow.RecordBatch) error) error) (int64, error) {
	key := s.stagingPrefix() + "/" + sinks.ObjectKey(w)
	up := newPartWriter(ctx, s.client, s.params(key, "application/vnd.apache.parquet", nil), int(s.cfg.PartSize))
	pw, err := pqenc.NewWriter(up, pqenc.Meta{Window: w, Version: s.version}, s.cfg.Options)
	if err != nil {
		return 0, err
	}
	if err := fill(pw.Write); err != nil {
		pw.Abort()
		_ = up.abort(ctx)
		return 0, err
	}
	if err := pw.Close(); err != nil {
		_ = up.abort(ctx)
		return 0, classify(err, s.cfg.Bucket, key, "")
	}
	if _, err := up.complete(); err != nil {
		_ = up.abort(ctx)
		return 0, classify(err, s.cfg.Bucket, key, "")
	}
	return pw.Rows(), nil
}

// Publish copies w's staged unit onto w's key (a server-side copy: the
// object appears whole) and deletes the staged one.
func (s *Sink) Publish(ctx context.Context, w event.Window) error {
	src := s.stagingPrefix() + "/" + sinks.ObjectKey(w)
	dst := s.Key(w)
	p := s.params(dst, "application/vnd.apache.parquet", nil)
	in := &s3.CopyObjectInput{
		Bucket:               &s.cfg.Bucket,
		Key:                  &dst,
		CopySource:           aws.String(s.cfg.Bucket + "/" + url.PathEscape(src)),
		ContentType:          aws.String(p.contentType),
		MetadataDirective:    types.MetadataDirectiveReplace,
		ServerSideEncryption: p.sse,
		SSEKMSKeyId:          p.kmsKeyID,
		StorageClass:         p.storageClass,
	}
	if p.tagging != nil {
		in.Tagging = p.tagging
		in.TaggingDirective = types.TaggingDirectiveReplace
	}
	if _, err := s.client.CopyObject(ctx, in); err != nil {
		return classify(s3client.OpError("CopyObject", err), s.cfg.Bucket, dst, "")
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.cfg.Bucket, Key: &src}); err != nil {
		return classify(s3client.OpError("DeleteObject", err), s.cfg.Bucket, src, "")
	}
	return nil
}

// Remove deletes u's object.
func (s *Sink) Remove(ctx context.Context, u sinks.UnitInfo) error {
	key := s.objectKey(u)
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.cfg.Bucket, Key: &key}); err != nil {
		return classify(s3client.OpError("DeleteObject", err), s.cfg.Bucket, key, "")
	}
	return nil
}
