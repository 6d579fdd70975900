package source

import "github.com/vaultsink/vaultsink/event"

// rowDigest is the content digest of a record being decoded.
func (d *Decoder) rowDigest(b []byte, ts int64, vals *[event.NumColumns]span) uint64 {
	d.rowHash.Begin(ts)
	for _, c := range event.DigestColumns {
		if s := vals[c]; s.where == spanNull {
			d.rowHash.Null()
		} else {
			v := d.bytesOf(b, s)
			d.rowHash.Length(len(v))
			d.rowHash.Write(v)
		}
	}
	return d.rowHash.Sum()
}

// foreign remembers the org field of the page's first org-mismatched record.
func (d *Decoder) foreign(v []byte) {
	if d.pg.ForeignOrg == "" {
		const max = 128 // it goes into an error message
		if len(v) > max {
			v = v[:max]
		}
		d.pg.ForeignOrg = string(v)
		if d.pg.ForeignOrg == "" {
			d.pg.ForeignOrg = `""`
		}
	}
}
