package runner

import (
	"errors"
	"testing"
	"time"

	"github.com/vaultsink/vaultsink/event"
)

func TestPlan(t *testing.T) {
	start := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	h := time.Hour
	tests := []struct {
		name              string
		end, now          time.Time
		lookback          int
		wantRedo, wantNew int
		firstNew          time.Time
	}{
		{"new org catches up closed windows only", start, start.Add(3*h + 4*time.Minute), 0, 0, 2, start},
		{"window closes after settle", start, start.Add(3*h + 5*time.Minute), 0, 0, 3, start},
		{"current org has nothing", start.Add(3 * h), start.Add(3*h + 30*time.Minute), 0, 0, 0, time.Time{}},
		{"lookback re-pulls committed windows", start.Add(3 * h), start.Add(4*h + 10*time.Minute), 2, 2, 1, start.Add(3 * h)},
		{"lookback never before start", start.Add(1 * h), start.Add(1*h + 10*time.Minute), 5, 1, 0, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			redo, fresh, err := Plan("o", start, tt.end, h, 5*time.Minute, tt.lookback, tt.now)
			if err != nil {
				t.Fatal(err)
			}
			if len(redo) != tt.wantRedo || len(fresh) != tt.wantNew {
				t.Fatalf("got %d redo %d new, want %d %d", len(redo), len(fresh), tt.wantRedo, tt.wantNew)
			}
			for i := 1; i < len(fresh); i++ {
				if !fresh[i].Start.Equal(fresh[i-1].End) {
					t.Fatalf("windows not contiguous: %v then %v", fresh[i-1], fresh[i])
				}
			}
			if len(fresh) > 0 && !fresh[0].Start.Equal(tt.firstNew) {
				t.Fatalf("first new window %v, want start %v", fresh[0], tt.firstNew)
			}
			if len(redo) > 0 && !redo[len(redo)-1].End.Equal(fresh0(fresh, tt.end)) {
				t.Fatalf("redo does not end at the checkpoint: %v", redo)
			}
		})
	}
}

// TestPlanRefusesUnaligned: a checkpoint that is not on a window boundary
// (made with another window size) is refused, never realigned: realigning
// would pull windows overlapping the ones written.
func TestPlanRefusesUnaligned(t *testing.T) {
	start := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	_, _, err := Plan("o", start, start.Add(90*time.Minute), time.Hour, 5*time.Minute, 0, start.Add(5*time.Hour))
	if !errors.Is(err, ErrCheckpoint) {
		t.Fatalf("err %v, want ErrCheckpoint", err)
	}
}

func fresh0(f []event.Window, end time.Time) time.Time {
	if len(f) > 0 {
		return f[0].Start
	}
	return end
}
