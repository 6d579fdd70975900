package checkpoint

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestUnknownFieldsKept: a checkpoint written by a newer vaultsink keeps
// the members this version does not know through a read and a write.
func TestUnknownFieldsKept(t *testing.T) {
	dir := t.TempDir()
	doc := `{"org_id":"acme","end":"2026-06-01T10:00:00Z","window":"1h0m0s","events":5,"bytes":1,"windows":1,"quarantined":0,` +
		`"future_field":{"a":[1,2]},"zz":"keep me"}`
	if err := os.WriteFile(filepath.Join(dir, "acme.json"), []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := OpenFileStore(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cp, err := s.Get(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if cp.Window.D() != time.Hour || len(cp.Unknown) != 2 {
		t.Fatalf("read: window %s, unknown %v", cp.Window.D(), cp.Unknown)
	}
	cp.End = cp.End.Add(time.Hour)
	if _, err := s.Put(ctx, cp); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "acme.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	var ff struct{ A []int }
	if string(m["zz"]) != `"keep me"` || json.Unmarshal(m["future_field"], &ff) != nil || len(ff.A) != 2 || !strings.Contains(string(m["end"]), "11:00") {
		t.Fatalf("written back without the unknown members or the change:\n%s", data)
	}
}
