package main

import (
	"io/fs"
	"path/filepath"
	"slices"
	"strings"

	"github.com/apache/arrow-go/v18/parquet/file"
)

// outStats describes the Parquet files one run left behind.
type outStats struct {
	Files          int                `json:"files"`
	Bytes          int64              `json:"bytes"`
	Rows           int64              `json:"rows"`
	BytesPerEvent  float64            `json:"bytes_per_event"`
	FileBytes      dist               `json:"file_bytes"`
	RowGroups      int                `json:"row_groups"`
	RowGroupRows   dist               `json:"row_group_rows"`
	RowGroupBytes  dist               `json:"row_group_compressed_bytes"`
	ColumnBytesPer map[string]float64 `json:"column_compressed_bytes_per_event"`
}

// dist is min / median / max.
type dist struct {
	Min    float64 `json:"min"`
	Median float64 `json:"median"`
	Max    float64 `json:"max"`
}

func distOf(v []float64) dist {
	if len(v) == 0 {
		return dist{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return dist{Min: s[0], Median: median(s), Max: s[len(s)-1]}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func parquetStats(dir string) (outStats, error) {
	var st outStats
	var sizes, rgRows, rgBytes []float64
	cols := map[string]int64{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".parquet") || strings.HasPrefix(d.Name(), ".") {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st.Files++
		st.Bytes += info.Size()
		sizes = append(sizes, float64(info.Size()))
		r, err := file.OpenParquetFile(p, false)
		if err != nil {
			return err
		}
		defer r.Close()
		md := r.MetaData()
		st.Rows += md.NumRows
		for i := range md.NumRowGroups() {
			rg := md.RowGroup(i)
			st.RowGroups++
			rgRows = append(rgRows, float64(rg.NumRows()))
			rgBytes = append(rgBytes, float64(rg.TotalCompressedSize()))
			for c := range rg.NumColumns() {
				cc, err := rg.ColumnChunk(c)
				if err != nil {
					return err
				}
				cols[cc.PathInSchema().String()] += cc.TotalCompressedSize()
			}
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	st.FileBytes, st.RowGroupRows, st.RowGroupBytes = distOf(sizes), distOf(rgRows), distOf(rgBytes)
	if st.Rows > 0 {
		st.BytesPerEvent = float64(st.Bytes) / float64(st.Rows)
		st.ColumnBytesPer = map[string]float64{}
		for k, v := range cols {
			st.ColumnBytesPer[k] = float64(v) / float64(st.Rows)
		}
	}
	return st, nil
}
