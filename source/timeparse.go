package source

import (
	"encoding/binary"
	"math"
	"strconv"
)

// Timestamps as the API may write them (RFC 3339 and relatives, dates,
// epoch seconds or milliseconds), parsed to Unix microseconds without
// allocating.

// parseTimeText parses RFC 3339 and its common relatives:
// YYYY-MM-DD[(T|t| )hh:mm:ss[(.|,)frac][ ][Z|z|±hh:mm|±hhmm|±hh]] — a
// missing zone means UTC, a bare date means midnight UTC. Digits below a
// microsecond are truncated.
func parseTimeText(s []byte) (int64, bool) {
	days, ok := parseDate(s)
	if !ok {
		return 0, false
	}
	return parseClock(s, days)
}

// parseDate reads the YYYY-MM-DD that starts s as days since the epoch.
func parseDate(s []byte) (int64, bool) {
	if len(s) < 10 || s[4] != '-' || s[7] != '-' {
		return 0, false
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	if !ok1 || !ok2 || !ok3 || month < 1 || month > 12 || day < 1 || day > daysIn(month, year) {
		return 0, false
	}
	return daysFromCivil(year, month, day), true
}

// timeText is parseTimeText remembering the last minute and the last date
// it read: a page's timestamps nearly all share theirs, and equal first
// sixteen (ten) bytes mean the same minute (day).
func (d *Decoder) timeText(s []byte) (int64, bool) {
	// The common shape, "YYYY-MM-DDTHH:MM:SS.mmmZ": its first 16 bytes
	// (date, hour and minute) repeat from event to event, so the minute
	// parsed last is kept like the date, and only the seconds and
	// milliseconds are read, as fixed digits. Anything else in those
	// places (a seconds value of 60, "12 Z") goes to the full parse.
	if len(s) == 24 && s[16] == ':' && s[19] == '.' && s[23] == 'Z' {
		w0, w1 := binary.LittleEndian.Uint64(s), binary.LittleEndian.Uint64(s[8:])
		sec, ok1 := digits(s[17:19])
		ms, ok2 := digits(s[20:23])
		fixed := ok1 && ok2 && sec <= 59
		if fixed && d.minute.ok && w0 == d.minute.w0 && w1 == d.minute.w1 {
			return d.minute.us + sec*1e6 + ms*1e3, true
		}
		us, ok := d.dayClock(s)
		if ok && fixed {
			d.minute = minuteCache{w0: w0, w1: w1, us: us - sec*1e6 - ms*1e3, ok: true}
		}
		return us, ok
	}
	return d.dayClock(s)
}

// minuteCache is the minute timeText read last: its first 16 bytes and its
// microseconds since the epoch.
type minuteCache struct {
	w0, w1 uint64
	us     int64
	ok     bool
}

// dayClock is parseTimeText with the date read last kept (dayCache).
func (d *Decoder) dayClock(s []byte) (int64, bool) {
	if len(s) < 10 {
		return 0, false
	}
	k, k2 := binary.LittleEndian.Uint64(s), binary.LittleEndian.Uint16(s[8:])
	if !d.day.ok || k != d.day.k || k2 != d.day.k2 {
		days, ok := parseDate(s)
		if !ok {
			return 0, false
		}
		d.day = dayCache{k: k, k2: k2, days: days, ok: true}
	}
	return parseClock(s, d.day.days)
}

// dayCache is the date timeText read last: its first ten bytes and days.
type dayCache struct {
	k    uint64
	k2   uint16
	ok   bool
	days int64
}

// parseClock reads what follows the date in s (days: the date's days
// since the epoch).
func parseClock(s []byte, days int64) (int64, bool) {
	if len(s) == 10 {
		return days * 86400 * 1e6, true
	}
	if len(s) < 19 || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || s[13] != ':' || s[16] != ':' {
		return 0, false
	}
	hour, ok1 := digits(s[11:13])
	minute, ok2 := digits(s[14:16])
	sec, ok3 := digits(s[17:19])
	if !ok1 || !ok2 || !ok3 || hour > 23 || minute > 59 || sec > 59 {
		return 0, false
	}
	us := ((days*24+hour)*60+minute)*60 + sec
	us *= 1e6
	i := 19
	if i < len(s) && (s[i] == '.' || s[i] == ',') {
		i++
		n := 0
		var frac int64
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if n < 6 {
				frac = frac*10 + int64(s[i]-'0')
			}
			n++
			i++
		}
		if n == 0 {
			return 0, false
		}
		for k := n; k < 6; k++ {
			frac *= 10
		}
		us += frac
	}
	if i < len(s) && s[i] == ' ' {
		i++
		if i == len(s) {
			return 0, false
		}
	}
	if i == len(s) {
		return us, true
	}
	switch s[i] {
	case 'Z', 'z':
		return us, i+1 == len(s)
	case '+', '-':
		rest := s[i+1:]
		var oh, om int64
		var ok, ok1 bool
		switch len(rest) {
		case 2:
			oh, ok = digits(rest)
		case 4:
			oh, ok = digits(rest[:2])
			om, ok1 = digits(rest[2:])
			ok = ok && ok1
		case 5:
			if rest[2] != ':' {
				return 0, false
			}
			oh, ok = digits(rest[:2])
			om, ok1 = digits(rest[3:])
			ok = ok && ok1
		}
		if !ok || oh > 23 || om > 59 {
			return 0, false
		}
		off := (oh*60 + om) * 60 * 1e6
		if s[i] == '+' {
			return us - off, true
		}
		return us + off, true
	}
	return 0, false
}

// parseTimeNumber reads a Unix time whose unit follows from its magnitude:
// below 1e11 seconds, below 1e14 milliseconds, below 1e17 microseconds,
// else nanoseconds. Digits below a microsecond are truncated.
func parseTimeNumber(s []byte) (int64, bool) {
	neg := false
	i := 0
	if i < len(s) && s[i] == '-' {
		neg = true
		i++
	}
	var n int64
	nd := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		c := int64(s[i] - '0')
		if n > (math.MaxInt64-c)/10 {
			return 0, false
		}
		n = n*10 + c
		nd++
		i++
	}
	if nd == 0 {
		return 0, false
	}
	var frac int64 // first 6 fraction digits
	if i < len(s) && s[i] == '.' {
		i++
		k := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if k < 6 {
				frac = frac*10 + int64(s[i]-'0')
			}
			k++
			i++
		}
		if k == 0 {
			return 0, false
		}
		for ; k < 6; k++ {
			frac *= 10
		}
	}
	if i < len(s) {
		if s[i] != 'e' && s[i] != 'E' {
			return 0, false
		}
		// Exponent notation is rare enough to take the slow path.
		f, err := strconv.ParseFloat(string(s), 64)
		if err != nil || math.IsNaN(f) || math.Abs(f) >= 1e18 {
			return 0, false
		}
		a := math.Abs(f)
		var us float64
		switch {
		case a < 1e11:
			us = f * 1e6
		case a < 1e14:
			us = f * 1e3
		case a < 1e17:
			us = f
		default:
			us = f / 1e3
		}
		return int64(us), true
	}
	var us int64
	switch {
	case n < 1e11:
		us = n*1e6 + frac
	case n < 1e14:
		us = n*1e3 + frac/1e3
	case n < 1e17:
		us = n
	default:
		us = n / 1e3
	}
	if neg {
		us = -us
	}
	return us, true
}

func digits(s []byte) (int64, bool) {
	var n int64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func daysIn(month, year int64) int64 {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil counts days from 1970-01-01 to y-m-d (proleptic Gregorian;
// H. Hinnant's algorithm), without time.Date's generality.
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 && y%400 != 0 {
		era--
	}
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}
