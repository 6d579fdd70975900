package event

import (
	"github.com/apache/arrow-go/v18/arrow"
)

// SchemaVersion is recorded in every output file; bump it when Schema changes.
const SchemaVersion = "1"

// Column indexes of Schema, in its fixed order.
const (
	ColEventID = iota
	ColOrgID
	ColTimestamp
	ColAction
	ColCategory
	ColSeverity
	ColTitle
	ColActor
	ColResource
	ColSourceIP
	ColDetail
	ColExtra
	ColIngestedAt
	NumColumns
)

// TimestampType is the Arrow type of the timestamp columns: microseconds, UTC.
var TimestampType = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}

// Schema is the one declared record schema (docs/how-it-works.md, "Record schema"), in
// a fixed column order. It is never inferred from data. DictionaryColumns
// are plain strings here and the Parquet writer dictionary-encodes them
// per row group: arrow-go's dictionary builders keep growing across
// batches, and its Parquet writer silently falls back to plain encoding
// for a column whose dictionary has grown past its limit.
var Schema = arrow.NewSchema([]arrow.Field{
	{Name: "event_id", Type: arrow.BinaryTypes.String, Nullable: false},
	{Name: "org_id", Type: arrow.BinaryTypes.String, Nullable: false},
	{Name: "timestamp", Type: TimestampType, Nullable: false},
	{Name: "action", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "category", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "severity", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "title", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "actor", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "resource", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "source_ip", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "detail", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "extra", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "ingested_at", Type: TimestampType, Nullable: false},
}, nil)

// DictionaryColumns are dictionary-encoded by the Parquet writer: their
// values repeat within a row group (one org; a few dozen actions, titles,
// categories and severities; an org's users and resources), so zstd
// compresses small indexes instead of the strings, for smaller files at
// no extra CPU (bench/DECISIONS.md); sinks/pqenc gathers each dictionary
// per row group itself. Where a column's dictionary would pass the
// writer's limit (1 MiB), that row group falls back to plain encoding.
// Event ids, IPs, detail and timestamps stay plain: their values are
// (nearly) unique, and a dictionary of them would only cost.
var DictionaryColumns = []string{"org_id", "action", "category", "severity", "title", "actor", "resource"}
