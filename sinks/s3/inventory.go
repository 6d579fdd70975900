package s3

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vaultsink/vaultsink/internal/s3client"
	"github.com/vaultsink/vaultsink/sinks"
	"github.com/vaultsink/vaultsink/sinks/pqread"
)

var _ sinks.Inventory = (*Sink)(nil)

// object is one listed object.
type object struct {
	key, etag string
	size      int64
}

// listMaxKeys is the page size asked of ListObjectsV2; 0 leaves it to the
// server (1,000 on S3). Tests lower it to see several pages.
var listMaxKeys int32

// list calls fn with every object under prefix, a ListObjectsV2 page at a
// time.
func (s *Sink) list(ctx context.Context, prefix string, fn func(object) error) error {
	in := &s3.ListObjectsV2Input{Bucket: &s.cfg.Bucket, Prefix: &prefix}
	if listMaxKeys > 0 {
		in.MaxKeys = aws.Int32(listMaxKeys)
	}
	for {
		page, err := s.client.ListObjectsV2(ctx, in)
		if err != nil {
			return classify(s3client.OpError("ListObjectsV2", err), s.cfg.Bucket, prefix, "")
		}
		for _, o := range page.Contents {
			obj := object{key: aws.ToString(o.Key), etag: aws.ToString(o.ETag), size: aws.ToInt64(o.Size)}
			if strings.HasSuffix(obj.key, "/") {
				continue // a "directory" marker
			}
			if err := fn(obj); err != nil {
				return err
			}
		}
		if !aws.ToBool(page.IsTruncated) || aws.ToString(page.NextContinuationToken) == "" {
			return nil
		}
		in.ContinuationToken = page.NextContinuationToken
	}
}

// Units lists the objects under <prefix>/org_id=<org>/ whose range may
// intersect [from, to). An object whose key names a window (sinks.ObjectKey)
// more than a day away from the range is passed over without a request;
// every other object's Parquet footer is read with ranged GETs (pinned to
// the listed ETag) and the object is listed when its footer window or its
// key window intersects the range, or neither is known.
func (s *Sink) Units(ctx context.Context, org string, from, to time.Time) ([]sinks.UnitInfo, error) {
	if org == "" || strings.Contains(org, "/") {
		return nil, fmt.Errorf("org %q is not usable as a key element", org)
	}
	var out []sinks.UnitInfo
	err := s.list(ctx, s.cfg.Prefix+"/org_id="+org+"/", func(o object) error {
		rel := strings.TrimPrefix(o.key, s.cfg.Prefix+"/")
		u := sinks.UnitInfo{Key: rel, Hidden: sinks.HiddenKey(rel)}
		u.KeyWindow, _ = sinks.ParseObjectKey(rel)
		if !u.KeyWindow.Start.IsZero() && !sinks.Intersects(u.KeyWindow, from.Add(-24*time.Hour), to.Add(24*time.Hour)) {
			return nil
		}
		f, err := s.footer(ctx, o)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			u.Err = err
		} else {
			u.Window, u.Rows = f.Window, f.Rows
		}
		if sinks.MayIntersect(u, from, to) {
			out = append(out, u)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the units of org %s: %w", org, err)
	}
	return out, nil
}

// footer reads o's Parquet footer with ranged GETs.
func (s *Sink) footer(ctx context.Context, o object) (pqread.Footer, error) {
	ra := &rangeReader{ctx: ctx, client: s.client, bucket: s.cfg.Bucket, key: o.key, size: o.size, etag: o.etag}
	f, err := pqread.ReadFooter(ra)
	if err != nil {
		if ra.err != nil {
			return f, classify(ra.err, s.cfg.Bucket, o.key, "")
		}
		return f, fmt.Errorf("s3://%s/%s: %w", s.cfg.Bucket, o.key, err)
	}
	return f, nil
}

// UnitRows downloads u's object to a temp file (memory does not grow with
// the object) and calls fn with the event id and timestamp of every row.
func (s *Sink) UnitRows(ctx context.Context, u sinks.UnitInfo, fn func(id string, ts time.Time) error) error {
	key := s.cfg.Prefix + "/" + u.Key
	return s.withObject(ctx, key, "a unit to verify", func(f *os.File) error {
		if err := pqread.IDTimes(ctx, f, fn); err != nil {
			return fmt.Errorf("read s3://%s/%s: %w", s.cfg.Bucket, key, err)
		}
		return nil
	})
}

// withObject downloads key to a temp file, calls fn with it and removes
// it; an object that no longer exists is an error.
func (s *Sink) withObject(ctx context.Context, key, what string, fn func(*os.File) error) error {
	f, _, err := s.download(ctx, key, what)
	if err != nil {
		return err
	}
	if f == nil {
		return fmt.Errorf("s3://%s/%s: the object no longer exists", s.cfg.Bucket, key)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	return fn(f)
}

// QuarantinedIn reads the *.jsonl objects under
// <quarantine_prefix>/org_id=<org>/ and calls fn with every record whose
// window starts in [from, to). Objects whose key puts their window more
// than a day away from the range are not read; hidden ones are skipped.
func (s *Sink) QuarantinedIn(ctx context.Context, org string, from, to time.Time, fn func(event.Quarantined) error) error {
	if org == "" || strings.Contains(org, "/") {
		return fmt.Errorf("org %q is not usable as a key element", org)
	}
	prefix := s.cfg.QuarantinePrefix + "/org_id=" + org + "/"
	err := s.list(ctx, prefix, func(o object) error {
		rel := strings.TrimPrefix(o.key, s.cfg.QuarantinePrefix+"/")
		if !strings.HasSuffix(o.key, ".jsonl") || sinks.HiddenKey(rel) {
			return nil
		}
		if start, ok := sinks.ParseQuarantineName(o.key); ok && !sinks.NearRange(start, from, to) {
			return nil
		}
		out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.cfg.Bucket, Key: &o.key})
		if err != nil {
			if s3client.IsNotFound(err) {
				return nil // replaced or removed since the listing
			}
			return classify(s3client.OpError("GetObject", err), s.cfg.Bucket, o.key, "quarantine")
		}
		defer out.Body.Close()
		if err := sinks.QuarantineLines(out.Body, from, to, fn); err != nil {
			return fmt.Errorf("s3://%s/%s: %w", s.cfg.Bucket, o.key, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("read the quarantine of org %s: %w", org, err)
	}
	return nil
}
