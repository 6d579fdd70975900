package sinktest

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/vaultsink/vaultsink/event"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Event is one synthetic audit event, shaped like the simulator's default
// profile (~420 bytes of JSON). Its fields map one to one onto event.Schema.
type Event struct {
	ID       string    `json:"id"`
	Org      string    `json:"org_id"`
	Time     time.Time `json:"timestamp"`
	Action   string    `json:"action"`
	Title    string    `json:"title"`
	Category string    `json:"category"`
	Severity string    `json:"severity"`
	Actor    string    `json:"actor"`
	Resource string    `json:"resource"`
	SourceIP string    `json:"source_ip"`
	Detail   string    `json:"detail"`
	Extra    string    `json:"extra,omitempty"`
}

var (
	actions    = []string{"SECRET_REVEALED", "SECRET_UPDATED", "API_TOKEN_CREATED", "API_TOKEN_REVOKED", "SSH_SESSION_STARTED", "SSH_SESSION_ENDED", "USER_LOGIN", "USER_LOGIN_FAILED", "CREDENTIAL_BREACH_DETECTED", "VAULT_SHARED"}
	categories = []string{"vault", "auth", "ssh", "admin", "token"}
	severities = []string{"info", "low", "medium", "high", "critical"}
	users      = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy"}
	vaults     = []string{"prod", "staging", "dev", "shared", "finance"}
)

// IDs returns n event ids "<prefix>-<i>" for i in [from, from+n).
func IDs(prefix string, from, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%08d", prefix, from+i)
	}
	return out
}

// Events builds deterministic synthetic events of window w with the given
// ids; every field is derived from the id, so a rerun produces equal events.
func Events(w event.Window, ids []string) []Event {
	span := w.End.Sub(w.Start)
	if span <= 0 {
		span = time.Hour
	}
	out := make([]Event, len(ids))
	for i, id := range ids {
		h := fnv.New64a()
		h.Write([]byte(id))
		r := h.Sum64()
		user := users[r%uint64(len(users))]
		vault := vaults[(r>>8)%uint64(len(vaults))]
		action := actions[(r>>16)%uint64(len(actions))]
		out[i] = Event{
			ID:       id,
			Org:      w.Org,
			Time:     w.Start.Add(time.Duration(r % uint64(span/time.Microsecond) * uint64(time.Microsecond))).UTC(),
			Action:   action,
			Title:    "Event " + action + " on " + vault,
			Category: categories[(r>>24)%uint64(len(categories))],
			Severity: severities[(r>>32)%uint64(len(severities))],
			Actor:    user + "@" + w.Org + ".example",
			Resource: fmt.Sprintf("vault/%s/secret-%04d", vault, (r>>40)%5000),
			SourceIP: fmt.Sprintf("203.0.%d.%d", (r>>48)%256, (r>>56)%256),
			Detail:   fmt.Sprintf(`{"vault":%q,"secret_type":"PASSWORD","via":"web","session":"ses_%016x","user_agent":"Mozilla/5.0 (X11; Linux x86_64) vaultterm-cli/2.%d"}`, vault, r, r%40),
		}
		if r%10 == 0 {
			out[i].Extra = fmt.Sprintf(`{"ticket":"CHG-%d"}`, r%100000)
		}
	}
	return out
}

// JSONBytes is the size of evs as API JSON, the "input" of throughput numbers.
func JSONBytes(evs []Event) int64 {
	var n int64
	for i := range evs {
		b, err := json.Marshal(&evs[i])
		if err != nil {
			panic(err) // plain struct of strings and a time: cannot fail
		}
		n += int64(len(b))
	}
	return n
}

// Batch builds a record batch in event.Schema from evs. The caller releases it.
func Batch(mem memory.Allocator, evs []Event) arrow.RecordBatch {
	b := array.NewRecordBuilder(mem, event.Schema)
	defer b.Release()
	ingested := arrow.Timestamp(time.Date(2026, 6, 2, 0, 0, 0, 0, time.UTC).UnixMicro())
	str := func(col int) *array.StringBuilder {
		sb, ok := b.Field(col).(*array.StringBuilder)
		if !ok {
			panic(fmt.Sprintf("sinktest: column %d is not a string column", col))
		}
		return sb
	}
	ts := func(col int) *array.TimestampBuilder {
		tb, ok := b.Field(col).(*array.TimestampBuilder)
		if !ok {
			panic(fmt.Sprintf("sinktest: column %d is not a timestamp column", col))
		}
		return tb
	}
	for i := range evs {
		e := &evs[i]
		str(event.ColEventID).Append(e.ID)
		str(event.ColOrgID).Append(e.Org)
		ts(event.ColTimestamp).Append(arrow.Timestamp(e.Time.UnixMicro()))
		str(event.ColAction).Append(e.Action)
		str(event.ColCategory).Append(e.Category)
		str(event.ColSeverity).Append(e.Severity)
		str(event.ColTitle).Append(e.Title)
		str(event.ColActor).Append(e.Actor)
		str(event.ColResource).Append(e.Resource)
		str(event.ColSourceIP).Append(e.SourceIP)
		str(event.ColDetail).Append(e.Detail)
		if e.Extra == "" {
			str(event.ColExtra).AppendNull()
		} else {
			str(event.ColExtra).Append(e.Extra)
		}
		ts(event.ColIngestedAt).Append(ingested)
	}
	return b.NewRecordBatch()
}
