package checkpoint

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/vaultsink/vaultsink/internal/check"
	"github.com/vaultsink/vaultsink/internal/fsutil"
	"github.com/vaultsink/vaultsink/internal/s3client"
)

// Checker is implemented by a store type's Config: it checks, from the
// configuration alone and without opening the store as Build does, that
// the store works (`vaultsink check-config --connect`). Check creates
// nothing (no directory) and writes nothing but scratch entries it removes
// again; it reports every finding, going on past a failed one where the
// next can still tell something. section is the section's path in the
// config file ("checkpoint"), which the hints name keys under.
type Checker interface {
	Check(ctx context.Context, section string) []check.Result
}

var (
	_ Checker = (*FileConfig)(nil)
	_ Checker = (*S3Config)(nil)
)

// Check checks the directory without creating it (OpenFileStore would):
// it exists and is writable, its .lock opens for writing and flock works
// there, and every checkpoint in it reads; or its nearest existing parent
// is writable.
func (c *FileConfig) Check(ctx context.Context, section string) []check.Result {
	path := c.Path
	if path == "" {
		path = DefaultFilePath
	}
	rs := []check.Result{check.Dir(path, section+".path", ".lock")}
	abs, err := filepath.Abs(path)
	if err != nil || rs[0].Status == check.Fail {
		return rs
	}
	if st, err := os.Stat(abs); err != nil || !st.IsDir() {
		return rs // to be created: nothing to read yet
	}
	rs = append(rs, checkFlock(abs, section))
	// A FileStore value, not OpenFileStore: that creates the directory and
	// removes earlier versions' temp files.
	s := &FileStore{dir: abs, log: slog.New(slog.DiscardHandler)}
	return append(rs, checkRead(ctx, s, abs, fmt.Sprintf("check the permissions of %s (`ls -l %s`)", abs, abs))...)
}

// checkFlock takes and releases an flock on a scratch file in dir, which
// it removes: Puts serialise through one (NFS without lock support
// refuses it).
func checkFlock(dir, section string) check.Result {
	f, err := os.CreateTemp(dir, ".vaultsink-check-*")
	if err != nil {
		return check.Failf(fmt.Sprintf("make %s writable or set %s.path to another directory", dir, section), "%s: %v", dir, err)
	}
	name := f.Name()
	f.Close()
	defer os.Remove(name)
	unlock, err := fsutil.Lock(name)
	if err != nil {
		return check.Failf(fmt.Sprintf("set %s.path to a local file system (flock is refused on this one, e.g. NFS without locking) or use checkpoint type s3", section),
			"%s: flock: %v", dir, err)
	}
	unlock()
	return check.OKf("%s: flock works (writers of the store serialise through .lock)", dir)
}

// Check checks the client's settings, the bucket (HeadBucket), that every
// checkpoint under the prefix reads (List, Get), and compare-and-swap on a
// scratch checkpoint (create with If-None-Match, update with If-Match,
// both refused when they should be, delete), which it removes.
func (c *S3Config) Check(ctx context.Context, section string) []check.Result {
	s, err := NewS3Store(ctx, *c, nil)
	if err != nil {
		return []check.Result{check.Failf(s3client.CredentialsHint(section), "%v", err)}
	}
	defer s.Close()
	bucket := s3client.CheckBucket(ctx, s.client, s.bucket, section)
	if bucket.Status == check.Fail {
		return []check.Result{bucket}
	}
	where := fmt.Sprintf("s3://%s/%s/", s.bucket, s.prefix)
	perms := fmt.Sprintf("the credentials need s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject on arn:aws:s3:::%s/%s/*; check %s.prefix",
		s.bucket, s.prefix, section)
	rs := append([]check.Result{bucket}, checkRead(ctx, s, where, perms)...)
	return append(rs, checkSwap(ctx, s, where, perms))
}

// maxReadFailures bounds the unreadable checkpoints listed one by one.
const maxReadFailures = 5

// checkRead lists the store and reads every checkpoint in it: a
// checkpoint that does not read stops its org's runs.
func checkRead(ctx context.Context, s Store, where, hint string) []check.Result {
	orgs, err := s.List(ctx)
	if err != nil {
		return []check.Result{check.Failf(hint, "%s: %v", where, err)}
	}
	var rs []check.Result
	bad := 0
	for _, org := range orgs {
		if _, err := s.Get(ctx, org); err != nil {
			bad++
			if bad <= maxReadFailures {
				rs = append(rs, check.Failf("repair or reset it as the message says", "%v", err))
			}
		}
	}
	if bad > maxReadFailures {
		rs = append(rs, check.Failf("`vaultsink checkpoint list` shows them all", "%d more checkpoints in %s do not read", bad-maxReadFailures, where))
	}
	if bad == 0 {
		rs = append(rs, check.OKf("%s: %d checkpoints read%s", where, len(orgs), orgList(orgs)))
	}
	return rs
}

func orgList(orgs []string) string {
	switch {
	case len(orgs) == 0:
		return " (none yet: a new org starts at its configured start)"
	case len(orgs) > 5:
		return " (" + strings.Join(orgs[:5], ", ") + ", …)"
	}
	return " (" + strings.Join(orgs, ", ") + ")"
}

// checkSwap puts a scratch checkpoint through the store's compare-and-swap:
// created (If-None-Match: *), created again (must be refused), updated
// with its version (If-Match), updated with the stale one (must be
// refused), deleted, gone. Leases rest on the refusals: a store that
// ignores them lets two daemons advance one org.
func checkSwap(ctx context.Context, s Store, where, hint string) check.Result {
	org := "_vaultsink-check-" + rand.Text()
	deleted := false
	defer func() {
		if !deleted {
			_ = s.Delete(context.WithoutCancel(ctx), org)
		}
	}()
	cp := Checkpoint{Org: org, LastError: "a scratch checkpoint of vaultsink check-config; remove it if it was left behind"}
	v1, err := s.Put(ctx, cp)
	if err != nil {
		return check.Failf(hint, "%s: create a scratch checkpoint: %v", where, err)
	}
	_, err = s.Put(ctx, cp)
	createRefused := errors.Is(err, ErrConflict)
	if err != nil && !createRefused {
		return check.Failf(hint, "%s: create the scratch checkpoint again: %v", where, err)
	}
	cp.Version, cp.Events = v1, 1
	if _, err := s.Put(ctx, cp); err != nil {
		return check.Failf(hint, "%s: update the scratch checkpoint with its version (If-Match): %v", where, err)
	}
	cp.Version, cp.Events = v1, 2 // stale now
	_, err = s.Put(ctx, cp)
	staleRefused := errors.Is(err, ErrConflict)
	if err != nil && !staleRefused {
		return check.Failf(hint, "%s: update the scratch checkpoint with a stale version: %v", where, err)
	}
	deleted = true
	if err := s.Delete(ctx, org); err != nil {
		return check.Failf(hint+fmt.Sprintf("; remove %s.json under the prefix by hand", org), "%s: delete the scratch checkpoint: %v", where, err)
	}
	if _, err := s.Get(ctx, org); !errors.Is(err, ErrNotFound) {
		return check.Failf(hint, "%s: the scratch checkpoint %s is still there after its delete (%v)", where, org, err)
	}
	if !createRefused || !staleRefused {
		return check.Failf("use a store that honours conditional writes (AWS S3, versitygw 1.8), or the file store on one host",
			"%s: the store ignores conditional writes (a second create refused: %t, a stale update refused: %t): two daemons could both advance an org",
			where, createRefused, staleRefused)
	}
	return check.OKf("%s: compare-and-swap works (a scratch checkpoint created, updated, refused when stale, deleted)", where)
}
