package check

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Dir checks, without creating it, that vaultsink can work in the
// directory at path, which the config key names:
//
//   - an existing directory must be readable, and writable: a hidden probe
//     file is created in it and removed again; each of files (lock files
//     vaultsink keeps there) that exists must open for writing;
//   - a missing one is created by vaultsink on first use, so its nearest
//     existing ancestor must be a directory this process may create entries
//     in (faccessat with the effective ids), which is checked without
//     writing there.
func Dir(path, key string, files ...string) Result {
	abs, err := filepath.Abs(path)
	if err != nil {
		return Failf("set "+key+" to a directory path", "%s %q: %v", key, path, err)
	}
	st, err := os.Stat(abs)
	switch {
	case absent(err):
		return missingDir(abs, key)
	case err != nil:
		return Failf(fmt.Sprintf("check the permissions of %s's parent directories (`namei -l %s`)", abs, abs), "%s %s: %v", key, abs, err)
	case !st.IsDir():
		return Failf("set "+key+" to a directory, not a file", "%s %s is not a directory", key, abs)
	}
	perms := fmt.Sprintf("make %s readable and writable by uid %d (`ls -ld %s`), or set %s to another directory", abs, os.Geteuid(), abs, key)
	d, err := os.Open(abs)
	if err == nil {
		_, err = d.ReadDir(1)
		d.Close()
	}
	if err != nil && !errors.Is(err, io.EOF) { // io.EOF: empty
		return Failf(perms, "%s %s: cannot list it: %v", key, abs, err)
	}
	f, err := os.CreateTemp(abs, ".vaultsink-check-*")
	if err != nil {
		return Failf(perms, "%s %s: cannot create a file in it: %v", key, abs, err)
	}
	name := f.Name()
	f.Close()
	if err := os.Remove(name); err != nil {
		return Failf(perms, "%s %s: cannot remove the probe file %s: %v (remove it by hand)", key, abs, name, err)
	}
	for _, n := range files {
		p := filepath.Join(abs, n)
		lf, err := os.OpenFile(p, os.O_RDWR, 0)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return Failf(fmt.Sprintf("give uid %d write access to %s (a run as another user left it: `ls -l %s`)", os.Geteuid(), p, p),
				"%s %s: cannot open %s for writing: %v", key, abs, p, err)
		}
		lf.Close()
	}
	return OKf("%s %s: directory exists, readable and writable", key, abs)
}

// absent: a stat found nothing at the path (ENOTDIR: a file stands where
// an ancestor directory would be; missingDir names it).
func absent(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENOTDIR)
}

// missingDir checks the nearest existing ancestor of the missing
// directory abs.
func missingDir(abs, key string) Result {
	parent := filepath.Dir(abs)
	for {
		st, err := os.Stat(parent)
		if err == nil {
			if !st.IsDir() {
				return Failf("set "+key+" to a path under a directory", "%s %s does not exist and cannot be created: %s is not a directory", key, abs, parent)
			}
			break
		}
		if !absent(err) || parent == filepath.Dir(parent) {
			return Failf(fmt.Sprintf("check the permissions of %s (`namei -l %s`)", parent, abs), "%s %s does not exist and %s cannot be read: %v", key, abs, parent, err)
		}
		parent = filepath.Dir(parent)
	}
	if err := unix.Faccessat(unix.AT_FDCWD, parent, unix.W_OK|unix.X_OK, unix.AT_EACCESS); err != nil {
		return Failf(fmt.Sprintf("create %s beforehand, writable by uid %d, or make %s writable, or set %s to another directory", abs, os.Geteuid(), parent, key),
			"%s %s does not exist and cannot be created: %s is not writable: %v", key, abs, parent, err)
	}
	return OKf("%s %s does not exist yet; vaultsink creates it on first use (%s is writable)", key, abs, parent)
}
