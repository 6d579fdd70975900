package checkpoint_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/vaultsink/vaultsink/checkpoint"
	"github.com/vaultsink/vaultsink/checkpoint/checkpointtest"
)

// BenchmarkFilePut measures one Put in a state directory holding N orgs'
// checkpoints: the cost of a write must not depend on N, or a pass over
// every org costs O(N²). The fsyncs of a Put dominate its time; allocs/op
// shows any part of the work that grows with N.
func BenchmarkFilePut(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("orgs=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			for i := range n {
				org := fmt.Sprintf("org_%05d", i)
				cp := checkpointtest.Full(org)
				data, err := cp.MarshalJSON()
				if err != nil {
					b.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dir, org+".json"), data, 0o600); err != nil {
					b.Fatal(err)
				}
			}
			s, err := checkpoint.OpenFileStore(dir, nil)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			cp, err := s.Get(ctx, "org_00000")
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				cp.Windows++
				v, err := s.Put(ctx, cp)
				if err != nil {
					b.Fatal(err)
				}
				cp.Version = v
			}
		})
	}
}
