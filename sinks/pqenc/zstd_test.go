package pqenc

import (
	"bytes"
	"runtime"
	"testing"

	"github.com/apache/arrow-go/v18/parquet/compress"
)

// TestZstdCodec: pqenc's zstd codec is the one arrow-go compresses pages
// with, its output is standard zstd (arrow-go's decoder reads it back),
// and an encoder returned to it survives garbage collection (arrow-go's
// sync.Pool lost them at every GC).
func TestZstdCodec(t *testing.T) {
	c, err := compress.GetCodec(compress.Codecs.Zstd)
	if err != nil {
		t.Fatal(err)
	}
	if c != compress.Codec(pageZstd) {
		t.Fatalf("registered zstd codec is %T, not pqenc's", c)
	}
	src := bytes.Repeat([]byte(`{"host":"batch-26.prod.internal","login_user":"ubuntu"}`), 2000)
	enc := c.EncodeLevel(nil, src, 1)
	if len(enc) >= len(src)/10 {
		t.Fatalf("%d bytes compressed to %d", len(src), len(enc))
	}
	dec, err := compress.Decode(c, nil, enc)
	if err != nil || !bytes.Equal(dec, src) {
		t.Fatalf("round trip: %v, equal %t", err, bytes.Equal(dec, src))
	}

	l := levelOf(1)
	e := pageZstd.get(l)
	pageZstd.put(l, e)
	runtime.GC()
	runtime.GC()
	if got := pageZstd.get(l); got != e {
		t.Fatal("the idle encoder did not survive garbage collection")
	} else {
		pageZstd.put(l, got)
	}
}
