package pqenc

import (
	"encoding/binary"
	"math/bits"
)

// Parquet page encoding, by hand.
//
// The Writer builds its pages itself rather than through arrow-go's column
// writers, whose general machinery (per-value definition levels run
// through an RLE encoder, per-batch statistics, pooled page buffers
// memset on release and regrown after every garbage collection, a copy of
// each page into a bytes.Buffer before compression) costs about as much
// CPU as zstd's entropy stage. The pages of this flat schema need none of
// it: values are appended straight from the Arrow buffers and definition
// levels taken from the validity bits (the saving: bench/DECISIONS.md).
// arrow-go still provides the schema, the statistics' encoding and the
// footer (metadata builders), and every test reads the files back with
// arrow-go, DuckDB or parquet-go.
//
// The pages written (Parquet format, parquet.thrift):
//   - data pages V1: [definition levels][values], compressed together.
//     Definition levels (nullable columns only; flat schema: level 1 if
//     the row has a value, 0 if null) are a 4-byte little-endian length
//     and the RLE/bit-packed hybrid at bit width 1: one RLE run when the
//     page has no null, else the validity bits as bit-packed groups
//     (Arrow's bitmap is LSB-first, as the hybrid's bit-packing is).
//   - values PLAIN: BYTE_ARRAY as a 4-byte length and the bytes, INT64 as
//     8 bytes little-endian; only rows with a value.
//   - dictionary columns: one dictionary page (PLAIN values) per column
//     chunk, then data pages of RLE_DICTIONARY indexes: a byte of bit
//     width and bit-packed groups of eight.

// Thrift enum values of parquet.thrift.
const (
	pageTypeData       = 0 // PageType.DATA_PAGE
	pageTypeDictionary = 2 // PageType.DICTIONARY_PAGE
	encPlain           = 0 // Encoding.PLAIN
	encRLE             = 3 // Encoding.RLE
	encRLEDictionary   = 8 // Encoding.RLE_DICTIONARY
)

// Thrift compact protocol: a field header is (id delta << 4) | type.
const (
	tcBoolFalse = 2
	tcI32       = 5
	tcStruct    = 12
)

// appendPageHeader appends a thrift-compact PageHeader: a data page header
// (num_values, encoding, RLE definition and repetition levels) or a
// dictionary page header (num_values, PLAIN, is_sorted false). No page
// statistics and no CRC: the column chunk's statistics are in the footer.
func appendPageHeader(b []byte, pageType int32, uncompressed, compressed, numValues int, encoding int32) []byte {
	b = append(b, 1<<4|tcI32)
	b = appendZigzag(b, pageType)
	b = append(b, 1<<4|tcI32)
	b = appendZigzag(b, int32(uncompressed))
	b = append(b, 1<<4|tcI32)
	b = appendZigzag(b, int32(compressed))
	if pageType == pageTypeData {
		b = append(b, 2<<4|tcStruct) // field 5: data_page_header
		b = append(b, 1<<4|tcI32)
		b = appendZigzag(b, int32(numValues))
		b = append(b, 1<<4|tcI32)
		b = appendZigzag(b, encoding)
		b = append(b, 1<<4|tcI32)
		b = appendZigzag(b, encRLE)
		b = append(b, 1<<4|tcI32)
		b = appendZigzag(b, encRLE)
	} else {
		b = append(b, 4<<4|tcStruct) // field 7: dictionary_page_header
		b = append(b, 1<<4|tcI32)
		b = appendZigzag(b, int32(numValues))
		b = append(b, 1<<4|tcI32)
		b = appendZigzag(b, encoding)
		b = append(b, 1<<4|tcBoolFalse) // is_sorted
	}
	return append(b, 0, 0) // end of the inner struct, end of PageHeader
}

func appendZigzag(b []byte, v int32) []byte {
	return binary.AppendUvarint(b, uint64(uint32(v<<1)^uint32(v>>31)))
}

// appendDefLevels appends a V1 page's definition levels for rows rows
// whose validity bits (LSB-first, bits past rows zero) are valid.
func appendDefLevels(b, valid []byte, rows, nulls int) []byte {
	at := len(b)
	b = append(b, 0, 0, 0, 0) // length, filled in below
	if nulls == 0 {
		b = binary.AppendUvarint(b, uint64(rows)<<1) // an RLE run of rows 1s
		b = append(b, 1)
	} else {
		groups := (rows + 7) / 8
		b = binary.AppendUvarint(b, uint64(groups)<<1|1)
		b = append(b, valid[:groups]...)
	}
	binary.LittleEndian.PutUint32(b[at:], uint32(len(b)-at-4))
	return b
}

// dictBitWidth is the bit width of the indexes into a dictionary of n
// values, as arrow-go and parquet-mr write it (1 for a single value).
func dictBitWidth(n int) int {
	if n <= 1 {
		return 1
	}
	return bits.Len32(uint32(n - 1))
}

// appendIndexes appends a page of RLE_DICTIONARY indexes: the bit width,
// then idx in bit-packed groups of eight (the last group padded with 0).
func appendIndexes(b []byte, idx []int32, width int) []byte {
	b = append(b, byte(width))
	if len(idx) == 0 {
		return b // a page of nulls only
	}
	groups := (len(idx) + 7) / 8
	b = binary.AppendUvarint(b, uint64(groups)<<1|1)
	var acc uint64
	nb := 0
	for _, x := range idx {
		acc |= uint64(uint32(x)) << nb
		nb += width
		for nb >= 32 {
			b = binary.LittleEndian.AppendUint32(b, uint32(acc))
			acc >>= 32
			nb -= 32
		}
	}
	// Padding: the values of the last group that do not exist are zeros,
	// which the accumulator already holds; flush whole bytes up to the
	// group boundary.
	end := groups * width // bytes the groups take
	for written := (len(idx)*width - nb) / 8; written < end; written++ {
		b = append(b, byte(acc))
		acc >>= 8
	}
	return b
}
