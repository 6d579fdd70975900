package pqenc

import (
	"io"
	"sync"

	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/klauspost/compress/zstd"
)

// zstdCodec replaces arrow-go's zstd page compressor (compress.RegisterCodec
// is the documented way to do so); reading still goes through arrow-go's.
//
// arrow-go keeps its zstd encoders in a sync.Pool, which every garbage
// collection empties, so a sync keeps building new encoders, each
// allocating a 1 MiB history window. Here encoders live in a plain free
// list and are reused for the life of the process; at most one per
// concurrently compressing goroutine is ever created.
//
// The encoder options match arrow-go's except two. Entropy coding of
// literals in blocks where no match was found, which zstd leaves off at
// its fastest level because it costs time on incompressible data (random
// event ids) and gains little. And no content checksum: hashing every
// frame costs CPU for nothing a reader checks, and Parquet's reference
// writer (Arrow C++, ZSTD_compress with default parameters) writes none
// either: readers do not expect it, and integrity in transit and at rest
// is the storage's (the S3 sink's uploads carry checksums by default).
// The output is standard zstd either way.
type zstdCodec struct {
	base compress.Codec // arrow-go's codec: decoding and streams

	mu   sync.Mutex
	free map[zstd.EncoderLevel][]*zstd.Encoder
}

var pageZstd = &zstdCodec{free: map[zstd.EncoderLevel][]*zstd.Encoder{}}

func init() {
	base, err := compress.GetCodec(compress.Codecs.Zstd)
	if err != nil {
		panic("pqenc: arrow-go has no zstd codec: " + err.Error())
	}
	pageZstd.base = base
	compress.RegisterCodec(compress.Codecs.Zstd, pageZstd)
}

// maxIdleEncoders bounds the encoders kept per level (~1.3 MiB each).
const maxIdleEncoders = 8

func levelOf(level int) zstd.EncoderLevel {
	if level == compress.DefaultCompressionLevel {
		return zstd.SpeedDefault
	}
	return zstd.EncoderLevelFromZstd(level)
}

func (z *zstdCodec) get(l zstd.EncoderLevel) *zstd.Encoder {
	z.mu.Lock()
	if s := z.free[l]; len(s) > 0 {
		e := s[len(s)-1]
		z.free[l] = s[:len(s)-1]
		z.mu.Unlock()
		return e
	}
	z.mu.Unlock()
	e, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(l),
		zstd.WithEncoderConcurrency(1),
		zstd.WithZeroFrames(true),
		zstd.WithEncoderCRC(false),
	)
	if err != nil {
		panic("pqenc: zstd encoder: " + err.Error()) // only for invalid options
	}
	return e
}

func (z *zstdCodec) put(l zstd.EncoderLevel, e *zstd.Encoder) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if len(z.free[l]) < maxIdleEncoders {
		z.free[l] = append(z.free[l], e)
	}
}

func (z *zstdCodec) EncodeLevel(dst, src []byte, level int) []byte {
	l := levelOf(level)
	e := z.get(l)
	out := e.EncodeAll(src, dst[:0])
	z.put(l, e)
	return out
}

func (z *zstdCodec) Encode(dst, src []byte) []byte {
	return z.EncodeLevel(dst, src, compress.DefaultCompressionLevel)
}

func (z *zstdCodec) CompressBound(n int64) int64 { return z.base.CompressBound(n) }
func (z *zstdCodec) Decode(dst, src []byte) []byte {
	return z.base.Decode(dst, src)
}

func (z *zstdCodec) DecodeWithError(dst, src []byte) ([]byte, error) {
	return compress.Decode(z.base, dst, src)
}

func (z *zstdCodec) NewReader(r io.Reader) io.ReadCloser {
	return z.base.(compress.StreamingCodec).NewReader(r)
}

func (z *zstdCodec) NewWriter(w io.Writer) io.WriteCloser {
	return z.base.(compress.StreamingCodec).NewWriter(w)
}

func (z *zstdCodec) NewWriterLevel(w io.Writer, level int) (io.WriteCloser, error) {
	return z.base.(compress.StreamingCodec).NewWriterLevel(w, level)
}
