// Package fsutil holds the file-system step every atomic writer of vaultsink
// (local sink, file checkpoints) ends with.
package fsutil

import (
	"fmt"
	"os"
)

// SyncDir fsyncs a directory, so a rename into it survives a power loss.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("fsync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync directory %s: %w", dir, err)
	}
	return nil
}
