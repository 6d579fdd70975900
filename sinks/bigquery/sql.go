package bigquery

import (
	"fmt"
	"strings"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"cloud.google.com/go/bigquery"
	"github.com/vaultsink/vaultsink/sinks"
)

// The SQL text of a commit: the transaction script, its parameters and the
// count query, built from the group's units.

// insertColumns are the target's columns in event.Schema order; detail
// and extra are JSON in the target but STRING in staging, because BigQuery
// loads JSON columns only from CSV, Avro and newline-delimited JSON, not
// Parquet.
//
// No value may fail the transaction: the source keeps any JSON it can
// parse, but BigQuery's JSON type refuses nesting deeper than 500 levels
// and numbers out of a DOUBLE's range (1e400), even with wide_number_mode
// 'round'. Such a value is stored as a JSON string holding its text
// (JSON_TYPE(detail) = 'string'), so nothing of it is lost and the rows
// around it commit. A NULL stays NULL (TO_JSON(NULL) would be JSON null).
func insertColumns() (cols, vals string) {
	for i, f := range event.Schema.Fields() {
		if i > 0 {
			cols += ", "
			vals += ", "
		}
		cols += "`" + f.Name + "`"
		if f.Name == "detail" || f.Name == "extra" {
			c := "S.`" + f.Name + "`"
			vals += fmt.Sprintf("CASE WHEN %[1]s IS NULL THEN NULL ELSE COALESCE(SAFE.PARSE_JSON(%[1]s, wide_number_mode => 'round'), TO_JSON(%[1]s)) END", c)
		} else {
			vals += "S.`" + f.Name + "`"
		}
	}
	return cols, vals
}

// MaxQueryParameters is BigQuery's limit of query parameters per job.
const MaxQueryParameters = 10000

// paramsPerSlice is the most parameters one unit adds to the commit script:
// its window (org, start, end and the adjacent windows' bounds: 5) and its
// org's fence (org, epoch, owner: 3). The script adds paramsFixed more.
const paramsPerSlice, paramsFixed = 8, 4

// windowsSQL is a table of the units' windows, each with the adjacent
// windows' bounds (nlo, nhi), and the constant bounds around all of them
// that let BigQuery prune the target's partitions; param adds parameters.
func windowsSQL(units []*unit, param func(string, any) string) (windows, lo, hi string) {
	l, h := units[0].w.Start, units[0].w.End
	var sel []string
	for i, u := range units {
		size := u.w.End.Sub(u.w.Start)
		l = minTime(l, u.w.Start.Add(-size))
		h = maxTime(h, u.w.End.Add(size))
		sel = append(sel, fmt.Sprintf("SELECT %s AS org, %s AS ws, %s AS we, %s AS nlo, %s AS nhi",
			param(fmt.Sprintf("o%d", i), u.w.Org), param(fmt.Sprintf("s%d", i), u.w.Start.UTC()),
			param(fmt.Sprintf("e%d", i), u.w.End.UTC()), param(fmt.Sprintf("l%d", i), u.w.Start.Add(-size).UTC()),
			param(fmt.Sprintf("h%d", i), u.w.End.Add(size).UTC())))
	}
	return "(" + strings.Join(sel, "\n  UNION ALL ") + ")", param("lo", l.UTC()), param("hi", h.UTC())
}

// paramList collects query parameters.
type paramList []bigquery.QueryParameter

func (p *paramList) add(name string, v any) string {
	*p = append(*p, bigquery.QueryParameter{Name: name, Value: v})
	return "@" + name
}

// notHeld is the condition under which a staged row S (joined with its
// window's nlo, nhi) is new: the table holds its id neither in its window
// nor in an adjacent one. The constant bounds lo, hi let BigQuery prune.
func notHeld(target, lo, hi string) string {
	return fmt.Sprintf(`NOT EXISTS (
  SELECT 1 FROM %s AS T
  WHERE T.org_id = S.org_id AND T.event_id = S.event_id
    AND T.`+"`timestamp`"+` >= %s AND T.`+"`timestamp`"+` < %s
    AND T.`+"`timestamp`"+` >= S.nlo AND T.`+"`timestamp`"+` < S.nhi)`, target, lo, hi)
}

// staged selects the staged rows of the units' windows with their
// windows' bounds.
func staged(stage, windows string) string {
	return fmt.Sprintf("(SELECT S.*, U.ws, U.nlo, U.nhi FROM %s AS S JOIN %s AS U\n      ON S.org_id = U.org AND S.`timestamp` >= U.ws AND S.`timestamp` < U.we)", stage, windows)
}

func (s *Sink) stageRef(t string) string {
	return fmt.Sprintf("`%s.%s.%s`", s.cfg.Project, s.cfg.StagingDataset, t)
}

// commitSQL is the commit's transaction script and its parameters. stage
// and qstage name the staging tables of the data and quarantine rows ("":
// none).
//
// The fence comes first: for the orgs whose units carry one, the script
// fails (ERROR, naming the org and the newer owner and epoch) when the
// fence table holds a newer epoch, and otherwise records the units'
// fence, so a writer that lost the lease writes nothing. Then the table only grows: a staged row is inserted
// unless the table already holds its id in its window or an adjacent one
// (the held copy wins, and an id repeated across a boundary is archived
// once), so a re-pull that returns less never removes a row and a rerun
// adds nothing twice. The quarantine of every unit's window is replaced (a
// unit that quarantined nothing clears it).
//
// Every read of the target and every DELETE is bounded by constant
// timestamps (@lo, @hi; @qlo, @qhi) around all the units' windows, so
// BigQuery prunes partitions instead of scanning the table.
func (s *Sink) commitSQL(units []*unit, stage, qstage string) (string, []bigquery.QueryParameter, error) {
	var params paramList
	windows, lo, hi := windowsSQL(units, params.add)
	target := "`" + s.target() + "`"
	qt := fmt.Sprintf("`%s.%s.%s`", s.cfg.Project, s.cfg.Dataset, s.quarantineTable())
	stmts := []string{"BEGIN TRANSACTION"}
	var fences []string
	seen := map[string]bool{}
	for _, u := range units {
		if u.fence == nil || seen[u.w.Org] {
			continue
		}
		seen[u.w.Org] = true
		i := len(fences)
		fences = append(fences, fmt.Sprintf("SELECT %s AS org, %s AS epoch, %s AS owner",
			params.add(fmt.Sprintf("fo%d", i), u.w.Org), params.add(fmt.Sprintf("fe%d", i), u.fence.Epoch), params.add(fmt.Sprintf("fw%d", i), u.fence.Owner)))
	}
	if len(fences) > 0 {
		ft := fmt.Sprintf("`%s.%s.%s`", s.cfg.Project, s.cfg.Dataset, s.fenceTable())
		w := "(" + strings.Join(fences, "\n  UNION ALL ") + ")"
		stmts = append(stmts,
			fmt.Sprintf("SELECT ERROR(FORMAT('%s%%s: lease lost to %%s (epoch %%d)', F.org_id, IFNULL(F.owner, ''), F.epoch))\nFROM %s AS F JOIN %s AS W ON F.org_id = W.org\nWHERE F.epoch > W.epoch",
				fenceMarker, ft, w),
			fmt.Sprintf("MERGE %s AS F\nUSING %s AS W ON F.org_id = W.org\nWHEN MATCHED THEN UPDATE SET epoch = W.epoch, owner = W.owner, updated_at = CURRENT_TIMESTAMP()\nWHEN NOT MATCHED THEN INSERT (org_id, epoch, owner, updated_at) VALUES (W.org, W.epoch, W.owner, CURRENT_TIMESTAMP())",
				ft, w))
	}
	if stage != "" {
		cols, vals := insertColumns()
		stmts = append(stmts, fmt.Sprintf("INSERT INTO %s (%s)\nSELECT %s\nFROM %s AS S\nWHERE %s\nQUALIFY ROW_NUMBER() OVER (PARTITION BY S.org_id, S.event_id ORDER BY S.`timestamp`, S.ingested_at) = 1",
			target, cols, vals, staged(s.stageRef(stage), windows), notHeld(target, lo, hi)))
	}
	var qpred []string
	qlo, qhi := units[0].w.Start, units[0].w.Start
	for i, u := range units {
		qpred = append(qpred, fmt.Sprintf("(org_id = @o%d AND window_start = @s%d)", i, i))
		qlo, qhi = minTime(qlo, u.w.Start), maxTime(qhi, u.w.Start)
	}
	stmts = append(stmts, fmt.Sprintf("DELETE FROM %s\nWHERE window_start >= %s AND window_start <= %s\n  AND (%s)",
		qt, params.add("qlo", qlo.UTC()), params.add("qhi", qhi.UTC()), strings.Join(qpred, "\n   OR ")))
	if qstage != "" {
		stmts = append(stmts, fmt.Sprintf("INSERT INTO %s (org_id, window_start, window_end, page, reason, raw)\nSELECT org_id, window_start, window_end, page, reason, raw FROM %s",
			qt, s.stageRef(qstage)))
	}
	stmts = append(stmts, "COMMIT TRANSACTION")
	if len(params) > MaxQueryParameters {
		return "", nil, fmt.Errorf("bigquery commit of %d windows needs %d query parameters, over BigQuery's %d (lower max_group_slices): %w",
			len(units), len(params), MaxQueryParameters, sinks.ErrPermanent)
	}
	return strings.Join(stmts, ";\n"), params, nil
}

// countSQL counts, per unit window, the rows the table holds (held), those
// whose id the staged rows (the walk's answer) do not repeat (vanished),
// and the staged rows the commit will add (added).
func (s *Sink) countSQL(units []*unit, stage string) (string, []bigquery.QueryParameter) {
	var params paramList
	windows, lo, hi := windowsSQL(units, params.add)
	target := "`" + s.target() + "`"
	rows := "(SELECT CAST(NULL AS STRING) AS org_id, CAST(NULL AS STRING) AS event_id, CAST(NULL AS TIMESTAMP) AS `timestamp` LIMIT 0)"
	if stage != "" {
		rows = "(SELECT org_id, event_id, `timestamp` FROM " + s.stageRef(stage) + ")"
	}
	q := fmt.Sprintf(`SELECT U.org, U.ws, IFNULL(H.held, 0) AS held, IFNULL(H.vanished, 0) AS vanished, IFNULL(N.added, 0) AS added
FROM %[1]s AS U
LEFT JOIN (
  SELECT org, ws, COUNT(*) AS held, COUNTIF(NOT returned) AS vanished
  FROM (
    SELECT U.org, U.ws, T.event_id, LOGICAL_OR(S.event_id IS NOT NULL) AS returned
    FROM %[1]s AS U
    JOIN %[2]s AS T ON T.org_id = U.org AND T.`+"`timestamp`"+` >= U.ws AND T.`+"`timestamp`"+` < U.we
    LEFT JOIN %[3]s AS S ON S.org_id = T.org_id AND S.event_id = T.event_id
    WHERE T.`+"`timestamp`"+` >= %[4]s AND T.`+"`timestamp`"+` < %[5]s
    GROUP BY U.org, U.ws, T.event_id)
  GROUP BY org, ws
) AS H ON H.org = U.org AND H.ws = U.ws
LEFT JOIN (
  SELECT S.org_id AS org, S.ws, COUNT(DISTINCT S.event_id) AS added
  FROM %[6]s AS S
  WHERE %[7]s
  GROUP BY S.org_id, S.ws
) AS N ON N.org = U.org AND N.ws = U.ws`, windows, target, rows, lo, hi, staged(rows, windows), notHeld(target, lo, hi))
	return q, params
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
