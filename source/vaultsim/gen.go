package vaultsim

import (
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Event is one canonical audit event with every default-profile field. It is
// what the simulator serves, before a profile reshapes it.
type Event struct {
	ID        string // "evt_" + 26 Crockford base32 chars (ULID layout: ms time, then 80 random bits)
	OrgID     string
	Timestamp time.Time // UTC, millisecond precision (whole seconds with SecondPrecision)
	Action    string
	Title     string
	Category  string
	Severity  string
	Actor     Actor
	Resource  Resource
	SourceIP  string
	Detail    string // compact JSON object, fixed key order
	// Late marks an event injected by the `late` fault: it is served only
	// once now >= Timestamp + LateDelay.
	Late bool
}

// Actor is who did it. The default profile serves Email (ID for the system actor).
type Actor struct{ Type, ID, Email string }

// Resource is what it was done to. The default profile serves Name.
type Resource struct{ Type, ID, Name string }

// AppendJSON appends the event exactly as the server writes it in profile p
// (the page, link and dates profiles share the default shape), with
// millisecond timestamps; Server.AppendEvent also follows SecondPrecision.
func (e Event) AppendJSON(dst []byte, p Profile) []byte {
	g := e.ev()
	return g.appendJSON(dst, p)
}

func (e Event) ev() ev {
	var g ev
	g.ms = e.Timestamp.UnixMilli()
	copy(g.id[:], e.ID[len(idPrefix):])
	g.org = e.OrgID
	g.act = &action{Name: e.Action, Title: e.Title, Category: e.Category, Severity: e.Severity}
	g.actor = &actorRec{typ: e.Actor.Type, id: e.Actor.ID, email: e.Actor.Email}
	g.resType = e.Resource.Type
	g.resID = append(g.resID, e.Resource.ID...)
	g.resName = append(g.resName, e.Resource.Name...)
	g.ip = append(g.ip, e.SourceIP...)
	g.detail = append(g.detail, e.Detail...)
	return g
}

const idPrefix = "evt_"

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// mix is the splitmix64 finalizer: every derived value in the simulator is a
// mix of the seed and the coordinates of what it describes, never of a
// shared random stream, so generation order and concurrency cannot change it.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

const golden = 0x9e3779b97f4a7c15

type rng struct{ s uint64 }

func (r *rng) next() uint64 { r.s += golden; return mix(r.s) }

func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }

// skewed returns an index in [0,n) biased towards 0, so a few actors, vaults
// and hosts account for most activity, as in a real org.
func (r *rng) skewed(n int) int {
	u := float64(r.next()>>11) / (1 << 53)
	return int(float64(n) * u * u * u)
}

func unit(h uint64) float64 { return float64(h>>11) / (1 << 53) }

func hashString(s string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(s))
	return h.Sum64()
}

const hourMs = 3600_000

// Activity by UTC hour of day and by weekday (Sunday first); each table
// averages 1 so --rate stays the mean.
var (
	hourFactor = func() [24]float64 {
		raw := [24]float64{0.35, 0.3, 0.28, 0.28, 0.3, 0.4, 0.6, 0.9, 1.3, 1.6, 1.7, 1.7,
			1.55, 1.6, 1.7, 1.65, 1.5, 1.3, 1.05, 0.85, 0.7, 0.6, 0.5, 0.42}
		var sum float64
		for _, v := range raw {
			sum += v
		}
		for i := range raw {
			raw[i] *= 24 / sum
		}
		return raw
	}()
	dayFactor = [7]float64{0.4, 1.24, 1.24, 1.24, 1.24, 1.24, 0.4}
)

// orgGen holds what is fixed per org: its key and its actor pool.
type orgGen struct {
	id       string
	key      uint64
	domain   string
	users    []actorRec
	services []actorRec
	tokens   []string
}

type actorRec struct{ typ, id, email string }

var systemActor = actorRec{typ: "system", id: "system"}

const usersPerOrg = 2500

func newOrgGen(seed uint64, org string) *orgGen {
	g := &orgGen{id: org, key: mix(seed ^ mix(hashString(org)))}
	dom := make([]byte, 0, len(org)+8)
	for i := 0; i < len(org); i++ {
		if c := org[i]; c != '_' {
			dom = append(dom, c)
		}
	}
	g.domain = string(dom) + ".example"
	g.users = make([]actorRec, usersPerOrg)
	for k := range g.users {
		g.users[k] = actorRec{
			typ:   "user",
			id:    "usr_" + strconv.Itoa(k+1),
			email: firstNames[k%len(firstNames)] + "." + lastNames[(k/len(firstNames))%len(lastNames)] + "@" + g.domain,
		}
	}
	for k, n := range serviceNames {
		g.services = append(g.services, actorRec{typ: "service_account", id: "sa_" + strconv.Itoa(k+1), email: "svc-" + n + "@" + g.domain})
	}
	for k := range 64 {
		g.tokens = append(g.tokens, "tok_"+strconv.FormatUint(mix(g.key^uint64(k)*golden)>>32, 16))
	}
	return g
}

// orgGens caches orgGen by org id; orgs outside the configured set (truth of
// any org, JWTs naming unknown orgs) are built on first use.
type orgGens struct {
	seed uint64
	m    sync.Map
}

func (o *orgGens) get(org string) *orgGen {
	if v, ok := o.m.Load(org); ok {
		return v.(*orgGen)
	}
	v, _ := o.m.LoadOrStore(org, newOrgGen(o.seed, org))
	return v.(*orgGen)
}

// key identifies one event of an hour before sorting: its time, its 80
// random id bits and its generation index (which seeds its content).
type key struct {
	ms int64
	hi uint16
	lo uint64
	i  int32
}

func hourKey(g *orgGen, hour int64) uint64 { return mix(g.key ^ mix(uint64(hour)+0x51ed27)) }

// hourCount is the deterministic number of events of an org in an hour.
func hourCount(g *orgGen, hour int64, rate float64) int {
	if rate <= 0 {
		return 0
	}
	t := time.UnixMilli(hour * hourMs).UTC()
	mean := rate * hourFactor[t.Hour()] * dayFactor[t.Weekday()]
	hk := hourKey(g, hour)
	jitter := 0.85 + 0.3*unit(mix(hk^0xc0c0))
	return int(math.Floor(mean*jitter + unit(mix(hk^0xf4ac))))
}

// hourKeys returns the hour's events in serving order: (timestamp, id).
// Because the id starts with the millisecond time, id order is that order.
func hourKeys(g *orgGen, hour int64, rate float64) []key {
	n := hourCount(g, hour, rate)
	if n == 0 {
		return nil
	}
	hk := hourKey(g, hour)
	ks := make([]key, n)
	base := hour * hourMs
	for i := range ks {
		r := rng{s: mix(hk + uint64(i)*golden)}
		ks[i] = key{ms: base + int64(r.next()%hourMs), hi: uint16(r.next()), lo: r.next(), i: int32(i)}
	}
	slices.SortFunc(ks, cmpKey)
	return ks
}

// cmpKey orders keys as their ids sort: by time, then random bits.
func cmpKey(a, b key) int {
	switch {
	case a.ms != b.ms:
		return cmpInt(a.ms, b.ms)
	case a.hi != b.hi:
		return cmpInt(int64(a.hi), int64(b.hi))
	case a.lo < b.lo:
		return -1
	case a.lo > b.lo:
		return 1
	}
	return 0
}

func cmpInt(a, b int64) int {
	if a < b {
		return -1
	}
	if a > b {
		return 1
	}
	return 0
}

// encodeID writes the 26-char ULID-style id of k.
func encodeID(dst *[26]byte, k key) {
	t := uint64(k.ms)
	for j := 9; j >= 0; j-- {
		dst[j] = crockford[t&31]
		t >>= 5
	}
	hi, lo := uint64(k.hi), k.lo
	for j := 25; j >= 10; j-- {
		dst[j] = crockford[lo&31]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
}

func isLate(g *orgGen, hour int64, i int32, rate float64) bool {
	if rate <= 0 {
		return false
	}
	return unit(mix(hourKey(g, hour)^mix(uint64(i)+0x1a7e))) < rate
}

// isRedelivered decides the redeliver fault for an event from its id bits
// alone, so the hour that holds the original and the hour that holds the
// copy agree without seeing each other.
func isRedelivered(seed uint64, k key, rate float64) bool {
	if rate <= 0 {
		return false
	}
	return unit(mix(seed^mix(uint64(k.ms)^mix(k.lo^uint64(k.hi)<<48^0x7ede1)))) < rate
}

// hasBadTS decides the badts fault for an event from its id bits alone.
func hasBadTS(seed uint64, k key, rate float64) bool {
	if rate <= 0 {
		return false
	}
	return unit(mix(seed^mix(uint64(k.ms)^mix(k.lo^uint64(k.hi)<<48^0xbad75)))) < rate
}

// shown reports whether the event with this id (26 chars) is inside a
// visible share. The draw is a pure function of seed and id, so lowering the
// share hides a superset of what a higher share hides, and restoring it shows
// the same events again.
func shown(seed uint64, id []byte, share float64) bool {
	h := uint64(14695981039346656037) // FNV-1a, inline: no allocation per event
	for _, c := range id {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return unit(mix(seed^mix(h^0x5ba7e))) < share
}

// ev is an event under construction; its byte slices are reused across
// events so generating an hour allocates almost nothing per event.
type ev struct {
	ms      int64
	id      [26]byte
	org     string
	act     *action
	actor   *actorRec
	resType string
	resID   []byte
	resName []byte
	ip      []byte
	detail  []byte
	late    bool
	sec     bool // render the timestamp without fractional seconds
	badTS   bool // render an unparseable timestamp (the badts fault)
}

// fill generates the content of event k of an hour: a pure function of
// (seed, org, hour, generation index).
func (e *ev) fill(g *orgGen, hour int64, k key) {
	e.ms = k.ms
	encodeID(&e.id, k)
	e.org = g.id
	r := rng{s: mix(hourKey(g, hour) ^ mix(uint64(k.i)+0xe7e47))}
	a := &catalog[actionSlots[r.intn(len(actionSlots))]]
	e.act = a
	switch a.Actor {
	case bySystem:
		e.actor = &systemActor
	case byService:
		e.actor = &g.services[r.skewed(len(g.services))]
	case byMixed:
		if r.intn(4) == 0 {
			e.actor = &g.services[r.skewed(len(g.services))]
		} else {
			e.actor = &g.users[r.skewed(len(g.users))]
		}
	default:
		e.actor = &g.users[r.skewed(len(g.users))]
	}
	// context shared by resource and detail so they agree
	vault := vaults[r.skewed(len(vaults))]
	secret := r.intn(len(secretNames))
	secretN := r.intn(12)
	host := r.skewed(len(hostRoles))
	hostN := r.intn(40) + 1
	env := environments[r.skewed(len(environments))]
	target := &g.users[r.intn(len(g.users))]
	tok := r.skewed(len(g.tokens))
	group := groups[r.intn(len(groups))]
	policy := policies[r.intn(len(policies))]
	model := models[r.skewed(len(models))]
	stype := secretTypes[r.intn(len(secretTypes))]

	e.resID, e.resName = e.resID[:0], e.resName[:0]
	switch a.Res {
	case resSecret:
		e.resType = "secret"
		e.resID = append(e.resID, "sec_"...)
		e.resID = strconv.AppendUint(e.resID, mix(g.key^uint64(secret*64+secretN))>>40, 36)
		e.resName = append(append(append(e.resName, "vault/"...), vault...), '/')
		e.resName = append(e.resName, secretNames[secret]...)
		if secretN > 0 {
			e.resName = strconv.AppendInt(append(e.resName, '-'), int64(secretN), 10)
		}
	case resVault:
		e.resType = "vault"
		e.resID = append(append(e.resID, "vlt_"...), vault...)
		e.resName = append(append(e.resName, "vault/"...), vault...)
	case resHost:
		e.resType = "host"
		e.resID = strconv.AppendInt(append(e.resID, "hst_"...), int64(host*1000+hostN), 10)
		e.resName = appendHost(append(e.resName, "ssh/host/"...), host, hostN, env)
	case resUser:
		e.resType = "user"
		u := e.actor
		if a.Category == "admin" || a.Category == "scim" || u.typ != "user" {
			u = target
		}
		e.resID = append(e.resID, u.id...)
		e.resName = append(append(e.resName, "user/"...), u.id...)
	case resToken:
		e.resType = "api_token"
		e.resID = append(e.resID, g.tokens[tok]...)
		e.resName = append(append(e.resName, "token/"...), g.tokens[tok]...)
	case resOrg:
		e.resType = "org"
		e.resID = append(e.resID, g.id...)
		e.resName = append(append(e.resName, "org/"...), g.id...)
	case resPolicy:
		e.resType = "policy"
		e.resID = append(e.resID, policy...)
		e.resName = append(append(e.resName, "policy/"...), policy...)
	case resGroup:
		e.resType = "group"
		e.resID = append(e.resID, group...)
		e.resName = append(append(e.resName, "group/"...), group...)
	case resInvoice:
		e.resType = "invoice"
		e.resID = strconv.AppendInt(append(e.resID, "inv_"...), int64(hour%100000), 10)
		e.resName = append(append(e.resName, "billing/invoice/"...), e.resID...)
	default:
		e.resType = "ai_assistant"
		e.resID = append(e.resID, model...)
		e.resName = append(append(e.resName, "ai/assistant/"...), model...)
	}

	e.ip = e.ip[:0]
	switch {
	case e.actor.typ == "system" || e.actor.typ == "service_account" && r.intn(2) == 0:
		e.ip = append(e.ip, "10."...)
		e.ip = strconv.AppendInt(e.ip, int64(r.intn(4)), 10)
		e.ip = strconv.AppendInt(append(e.ip, '.'), int64(r.intn(256)), 10)
		e.ip = strconv.AppendInt(append(e.ip, '.'), int64(r.intn(254)+1), 10)
	case r.intn(5) == 0:
		e.ip = append(e.ip, "2001:db8:"...)
		e.ip = strconv.AppendUint(e.ip, r.next()&0xffff, 16)
		e.ip = strconv.AppendUint(append(e.ip, ':'), r.next()&0xffff, 16)
		e.ip = strconv.AppendUint(append(e.ip, "::"...), r.next()&0xffff+1, 16)
	default:
		firsts := [...]int{34, 35, 52, 54, 81, 91, 100, 185, 203, 198, 62, 145}
		e.ip = strconv.AppendInt(e.ip, int64(firsts[r.intn(len(firsts))]), 10)
		for range 3 {
			e.ip = strconv.AppendInt(append(e.ip, '.'), int64(r.intn(254)+1), 10)
		}
	}

	nkeys := len(a.Detail)
	if nkeys > 2 {
		// mostly the full set, sometimes one key fewer, as optional fields are
		nkeys -= r.intn(2)
	}
	d := append(e.detail[:0], '{')
	for j, k := range a.Detail[:nkeys] {
		if j > 0 {
			d = append(d, ',')
		}
		d = append(append(append(d, '"'), k...), `":`...)
		d = detailValue(d, k, &r, detailCtx{g: g, vault: vault, stype: stype, host: host, hostN: hostN, env: env,
			target: target, tok: tok, group: group, policy: policy, model: model, hour: hour})
	}
	if nkeys < 6 {
		// the API gateway's request id, as real audit details carry
		d = append(d, `,"request_id":"req_`...)
		d = append(strconv.AppendUint(d, r.next()>>4, 36), '"')
	}
	e.detail = append(d, '}')
}

type detailCtx struct {
	g      *orgGen
	vault  string
	stype  string
	host   int
	hostN  int
	env    string
	target *actorRec
	tok    int
	group  string
	policy string
	model  string
	hour   int64
}

func appendHost(b []byte, role, n int, env string) []byte {
	b = append(append(b, hostRoles[role]...), '-')
	b = strconv.AppendInt(b, int64(n), 10)
	return append(append(append(b, '.'), env...), ".internal"...)
}

func q(b []byte, s string) []byte { return append(append(append(b, '"'), s...), '"') }

func pick(b []byte, r *rng, list []string) []byte { return q(b, list[r.intn(len(list))]) }

func num(b []byte, v int) []byte { return strconv.AppendInt(b, int64(v), 10) }

// detailValue appends the JSON value of detail key k. Every value is plain
// ASCII without quotes or backslashes, so no escaping is needed here.
func detailValue(b []byte, k string, r *rng, c detailCtx) []byte {
	switch k {
	case "vault":
		return q(b, c.vault)
	case "secret_type":
		return q(b, c.stype)
	case "via":
		return pick(b, r, vias)
	case "reveal_reason":
		return pick(b, r, []string{"incident", "deploy", "debugging", "rotation", "onboarding", "audit"})
	case "reason":
		return pick(b, r, reasons)
	case "field":
		return pick(b, r, fieldNames)
	case "mfa", "soft_delete", "forced":
		return strconv.AppendBool(b, r.intn(3) != 0)
	case "folder":
		return pick(b, r, folders)
	case "fields_changed":
		return append(q(append(b, '['), fieldNames[r.intn(len(fieldNames))]), ']')
	case "version", "attempt", "rule_count", "range_days", "token_age_days", "expires_in_days":
		return num(b, 1+r.intn(30))
	case "target_user", "transfer_to":
		return q(b, c.target.email)
	case "permission":
		return pick(b, r, permissions)
	case "rotation_policy":
		return q(b, "every-"+strconv.Itoa(30*(1+r.intn(3)))+"d")
	case "count", "secret_count", "member_count", "seats", "old_seats", "new_seats":
		return num(b, 2+r.intn(400))
	case "format":
		return pick(b, r, formats)
	case "visibility":
		return pick(b, r, []string{"private", "team", "org"})
	case "breach_source":
		return pick(b, r, breaches)
	case "first_seen":
		return q(b, time.UnixMilli((c.hour-int64(24*(1+r.intn(90))))*hourMs).UTC().Format("2006-01-02"))
	case "exposure_url":
		return q(b, "https://github.com/"+firstNames[r.intn(len(firstNames))]+"-dev/scratch/blob/main/config.env")
	case "detector":
		return pick(b, r, detectors)
	case "host":
		return append(appendHost(append(b, '"'), c.host, c.hostN, c.env), '"')
	case "login_user":
		return pick(b, r, loginUsers)
	case "session_id":
		b = append(b, `"ses_`...)
		return append(strconv.AppendUint(b, r.next()>>16, 36), '"')
	case "cert_ttl_s":
		return num(b, 300*(1+r.intn(24)))
	case "duration_s", "session_age_s":
		return num(b, 5+r.intn(7200))
	case "command_count":
		return num(b, r.intn(300))
	case "bytes_out":
		return num(b, r.intn(50_000_000))
	case "key_type":
		return pick(b, r, keyTypes)
	case "environment":
		return q(b, c.env)
	case "command":
		return pick(b, r, commands)
	case "policy":
		return q(b, c.policy)
	case "method":
		return pick(b, r, methods)
	case "user_agent":
		return pick(b, r, userAgents)
	case "country":
		return pick(b, r, countries)
	case "idp":
		return pick(b, r, idps)
	case "mfa_method":
		return pick(b, r, mfaMethods)
	case "role", "old_role", "new_role":
		return pick(b, r, roles)
	case "added", "removed":
		b = append(b, `["`...)
		b = strconv.AppendInt(b, int64(r.intn(223)+1), 10)
		b = append(b, ".0.113.0/24"...)
		return append(b, `"]`...)
	case "setting":
		return pick(b, r, settings)
	case "old_value", "new_value":
		return num(b, r.intn(120))
	case "group":
		return q(b, c.group)
	case "token_name":
		return q(b, serviceNames[c.tok%len(serviceNames)]+"-token")
	case "scopes":
		return pick(b, r, scopeSets)
	case "endpoint":
		return pick(b, r, endpoints)
	case "status":
		return num(b, statuses[r.intn(len(statuses))])
	case "external_id":
		b = append(b, `"00u`...)
		return append(strconv.AppendUint(b, r.next()>>20, 36), '"')
	case "old_plan", "new_plan":
		return pick(b, r, plans)
	case "amount_cents":
		return num(b, 1000*(5+r.intn(500)))
	case "currency":
		return pick(b, r, currencies)
	case "invoice_id":
		return append(strconv.AppendInt(append(b, `"inv_`...), c.hour%100000, 10), '"')
	case "model":
		return q(b, c.model)
	case "prompt_tokens", "completion_tokens":
		return num(b, 20+r.intn(4000))
	case "feature":
		return pick(b, r, features)
	}
	return append(b, "null"...)
}

// appendTS writes 2026-06-01T10:15:30.123Z.
func appendTS(b []byte, ms int64) []byte {
	t := time.UnixMilli(ms).UTC()
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	b = append4(b, y)
	b = append2(append(b, '-'), int(mo))
	b = append2(append(b, '-'), d)
	b = append2(append(b, 'T'), h)
	b = append2(append(b, ':'), mi)
	b = append2(append(b, ':'), s)
	f := int(ms % 1000)
	if f < 0 {
		f += 1000
	}
	return append(append(b, '.', byte('0'+f/100), byte('0'+f/10%10), byte('0'+f%10)), 'Z')
}

// appendTSSec writes 2026-06-01T10:15:30Z (SecondPrecision: ms is whole
// seconds already).
func appendTSSec(b []byte, ms int64) []byte {
	b = appendTS(b, ms)
	return append(b[:len(b)-5], 'Z')
}

func (e *ev) appendTime(b []byte) []byte {
	if e.badTS {
		return append(b, "not a time"...)
	}
	if e.sec {
		return appendTSSec(b, e.ms)
	}
	return appendTS(b, e.ms)
}

func append2(b []byte, v int) []byte { return append(b, byte('0'+v/10), byte('0'+v%10)) }

func append4(b []byte, v int) []byte {
	return append(b, byte('0'+v/1000), byte('0'+v/100%10), byte('0'+v/10%10), byte('0'+v%10))
}

// appendJSONString escapes s as a JSON string (needed for the camel
// profile's detail, which is JSON text inside a string).
func appendJSONString(b []byte, s []byte) []byte {
	b = append(b, '"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, `\u00`...)
			b = append(b, "0123456789abcdef"[c>>4], "0123456789abcdef"[c&15])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

func (e *ev) appendJSON(b []byte, p Profile) []byte {
	if p == ProfileCamel {
		b = e.appendTime(append(b, `{"occurredAt":"`...))
		b = append(append(append(b, `","orgId":"`...), e.org...), `","action":"`...)
		b = append(append(b, e.act.Name...), `","title":"`...)
		b = append(append(b, e.act.Title...), `","category":"`...)
		b = append(append(b, e.act.Category...), `","severity":"`...)
		b = append(append(b, e.act.Severity...), `","actor":{"type":"`...)
		b = append(append(b, e.actor.typ...), `","id":"`...)
		b = append(b, e.actor.id...)
		if e.actor.email != "" {
			b = append(append(b, `","email":"`...), e.actor.email...)
		}
		b = append(append(b, `"},"resource":{"type":"`...), e.resType...)
		b = append(append(append(b, `","id":"`...), e.resID...), `","name":"`...)
		b = append(append(b, e.resName...), `"},"sourceIp":"`...)
		b = append(append(b, e.ip...), `","detail":`...)
		b = appendJSONString(b, e.detail)
		return append(b, '}')
	}
	b = append(append(append(b, `{"id":"`+idPrefix...), e.id[:]...), `","org_id":"`...)
	b = append(append(b, e.org...), `","timestamp":"`...)
	b = e.appendTime(b)
	b = append(append(append(b, `","action":"`...), e.act.Name...), `","title":"`...)
	b = append(append(b, e.act.Title...), `","category":"`...)
	b = append(append(b, e.act.Category...), `","severity":"`...)
	b = append(append(b, e.act.Severity...), `","actor":"`...)
	if e.actor.email != "" {
		b = append(b, e.actor.email...)
	} else {
		b = append(b, e.actor.id...)
	}
	b = append(append(append(b, `","resource":"`...), e.resName...), `","source_ip":"`...)
	b = append(append(append(b, e.ip...), `","detail":`...), e.detail...)
	return append(b, '}')
}

func (e *ev) event() Event {
	return Event{
		ID:        idPrefix + string(e.id[:]),
		OrgID:     e.org,
		Timestamp: time.UnixMilli(e.ms).UTC(),
		Action:    e.act.Name,
		Title:     e.act.Title,
		Category:  e.act.Category,
		Severity:  e.act.Severity,
		Actor:     Actor{Type: e.actor.typ, ID: e.actor.id, Email: e.actor.email},
		Resource:  Resource{Type: e.resType, ID: string(e.resID), Name: string(e.resName)},
		SourceIP:  string(e.ip),
		Detail:    string(e.detail),
		Late:      e.late,
	}
}

// hourData is one rendered hour of one org, in serving order.
type hourData struct {
	ms   []int64 // stored (served) time
	ids  []byte  // 26 bytes per event
	late []bool
	blob []byte
	off  []int32 // len n+1: event i is blob[off[i]:off[i+1]]
	// With the redeliver fault only (nil otherwise): whether row i is a
	// copy, and the stored time of its original (retention cuts by it).
	redo []bool
	orig []int64
}

func (h *hourData) n() int { return len(h.ms) }

func (h *hourData) id(i int) []byte { return h.ids[26*i : 26*i+26] }

func (h *hourData) size() int {
	return len(h.blob) + len(h.ids) + 17*len(h.ms) + 9*len(h.orig) + 64
}

// row is one served event of an hour: event k of hour src (its content and
// id), served at ms. A redelivered copy is a second row of the same event.
type row struct {
	ms   int64
	src  int64
	k    key
	copy bool
}

// stored is the time the API keeps for an event generated at ms.
func (s *Server) stored(ms int64) int64 {
	if s.cfg.SecondPrecision {
		return floorDiv(ms, 1000) * 1000
	}
	return ms
}

// hourEmpty reports, without generating it, that hour h has no rows.
func (s *Server) hourEmpty(g *orgGen, h int64) bool {
	return hourCount(g, h, s.cfg.Rate) == 0 &&
		(s.cfg.Faults.Redeliver <= 0 || hourCount(g, h-1, s.cfg.Rate) == 0)
}

// buildHour renders hour h of g: its own events and, with the redeliver
// fault, the copies that land in it, of events of this hour and of the one
// before (RedeliverDelay < 1h).
func (s *Server) buildHour(g *orgGen, h int64) *hourData {
	ks := hourKeys(g, h, s.cfg.Rate)
	rows := make([]row, len(ks))
	for j, k := range ks {
		// truncation keeps the (time, id) order and the hour
		rows[j] = row{ms: s.stored(k.ms), src: h, k: k}
	}
	if s.cfg.Faults.Redeliver > 0 {
		rows = s.addCopies(g, h, ks, rows)
	}
	return s.renderRows(g, rows)
}

func (s *Server) addCopies(g *orgGen, h int64, ks []key, rows []row) []row {
	hlo, _ := s.histBounds()
	delay := s.cfg.RedeliverDelay.Milliseconds()
	srcs := [2]struct {
		h  int64
		ks []key
	}{{h - 1, hourKeys(g, h-1, s.cfg.Rate)}, {h, ks}}
	for _, src := range srcs {
		for _, k := range src.ks {
			if !isRedelivered(s.cfg.Seed, k, s.cfg.Faults.Redeliver) {
				continue
			}
			orig := s.stored(k.ms)
			if orig < hlo {
				continue // the original is before the history: it never happened
			}
			if ms := s.stored(orig + delay); floorDiv(ms, hourMs) == h {
				rows = append(rows, row{ms: ms, src: src.h, k: k, copy: true})
			}
		}
	}
	// (time, id) is unique: a copy shares its original's id, not its time.
	slices.SortFunc(rows, func(a, b row) int {
		if a.ms != b.ms {
			return cmpInt(a.ms, b.ms)
		}
		return cmpKey(a.k, b.k)
	})
	return rows
}

func (s *Server) renderRows(g *orgGen, rows []row) *hourData {
	n := len(rows)
	h := &hourData{
		ms:   make([]int64, n),
		ids:  make([]byte, 26*n),
		late: make([]bool, n),
		off:  make([]int32, n+1),
		blob: make([]byte, 0, n*440),
	}
	if s.cfg.Faults.Redeliver > 0 {
		h.redo, h.orig = make([]bool, n), make([]int64, n)
	}
	e := ev{sec: s.cfg.SecondPrecision}
	for j, r := range rows {
		e.fill(g, r.src, r.k)
		e.ms = r.ms
		e.badTS = hasBadTS(s.cfg.Seed, r.k, s.cfg.Faults.BadTimestamp)
		h.ms[j] = r.ms
		copy(h.ids[26*j:], e.id[:])
		h.late[j] = isLate(g, r.src, r.k.i, s.cfg.Faults.Late)
		if h.redo != nil {
			h.redo[j], h.orig[j] = r.copy, s.stored(r.k.ms)
		}
		h.blob = e.appendJSON(h.blob, s.cfg.Profile)
		h.off[j+1] = int32(len(h.blob))
	}
	return h
}
