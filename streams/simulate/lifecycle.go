package simulate

import (
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// lifecycleTypes and standaloneTypes are every event type the generator emits; New checks that
// the catalog has them.
var (
	lifecycleTypes = []string{"customer.created", "member.registered", "reservation.created", "reservation.updated",
		"reservation.canceled", "checkin_checkout.checked_in", "service.ordered", "service.canceled", "billing.created",
		"billing.paid", "checkin_checkout.checked_out", "points.added", "feedback.submitted"}
	standaloneTypes = []string{"customer.updated", "member.status_changed", "points.used", "auth.user_created",
		"auth.permissions_changed", "system.error", "system.maintenance"}
)

// profile is a simulated hotel group.
type profile struct {
	name, brand, code string
	currency          string
	unit              int64 // smallest amount charged, in cents (100 for yen)
	centsPerPoint     int64 // spend that earns one loyalty point, in cents
	rate              [2]int64
	properties        []string
}

var profiles = []profile{
	{"sakura-hotels", "Sakura", "SKR", "JPY", 100, 10000, [2]int64{12000, 60000}, []string{"KYO01", "TYO01", "OSA01", "SPK01"}},
	{"lumiere-hotels", "Lumière", "LUM", "EUR", 1, 10, [2]int64{110, 420}, []string{"PAR01", "LYO01", "NCE01"}},
	{"harbor-inns", "Harbor", "HBR", "USD", 1, 10, [2]int64{129, 389}, []string{"SFO01", "SEA01", "BOS01"}},
	{"alpine-lodges", "Alpine", "ALP", "CHF", 1, 10, [2]int64{160, 520}, []string{"ZRH01", "GVA01", "ZER01"}},
	{"thames-hotels", "Thames", "THM", "GBP", 1, 10, [2]int64{120, 450}, []string{"LON01", "LON02", "EDI01"}},
	{"coral-resorts", "Coral", "CRL", "AUD", 1, 10, [2]int64{180, 600}, []string{"SYD01", "CNS01"}},
	{"lotus-stays", "Lotus", "LTS", "SGD", 1, 10, [2]int64{190, 480}, []string{"SIN01", "SIN02"}},
	{"maple-suites", "Maple", "MPL", "CAD", 1, 10, [2]int64{150, 420}, []string{"YVR01", "YYZ01"}},
}

type roomType struct {
	code, name string
	factor     int64 // rate multiplier in percent
}

var (
	roomTypes = []roomType{{"STD-DBL", "Standard Double", 100}, {"DLX-TWN", "Deluxe Twin", 140}, {"STE-KNG", "Suite King", 230}}
	ratePlans = []string{"BAR-BB", "CORP-RO", "ADV-RO"}
	tiers     = []struct {
		code, name string
	}{{"BLOSSOM", "Blossom"}, {"SILVER", "Silver"}, {"GOLD", "Gold"}, {"PLATINUM", "Platinum"}}
)

// maxStays bounds the reservation lifecycles a tenant has in flight at once.
const maxStays = 8

type tenant struct {
	idx        int
	name       string
	prof       profile
	seq        []uint64 // per topic index
	lifecycles uint32
	customers  int   // customer numbers handed out
	known      []int // customers whose customer.created was emitted
	members    []*member
	memberOf   map[int]*member // customer -> membership, once member.registered was emitted
	stays      []*stay
	orders     uint64
	txns       uint64
	users      int
	notices    uint64
}

func newTenant(i, topics int) *tenant {
	return &tenant{idx: i, name: TenantName(i), prof: profiles[i%len(profiles)], seq: make([]uint64, topics), memberOf: map[int]*member{}}
}

type member struct {
	customer int
	number   string
	tier     int // index into tiers
	balance  int64
}

type stay struct {
	n                      uint32
	id, correlation        string
	confirmation, property string
	room                   roomType
	ratePlan, roomID       string
	customer               int
	member                 *member
	arrival                time.Time
	nights, adults         int
	childrenAges           []any
	rate                   int64 // per night before tax, in cents
	createdAt              time.Time
	roomAssigned           bool
	orders                 []*order
	billID                 string
	billGross              int64
	plan                   []string
	next                   int
}

type order struct {
	id, serviceID, name string
	quantity            int
	unit                int64
	at                  time.Time
	canceled            bool
}

// ctx is the making of one event.
type ctx struct {
	g    *Generator
	t    *tenant
	ts   time.Time
	stay *stay  // the lifecycle the event belongs to, if any
	user string // metadata.userId
}

// step picks what the tenant does next and returns the event type, its data and the lifecycle
// number (0 outside a lifecycle).
func (c *ctx) step() (string, map[string]any, uint32) {
	g, t := c.g, c.t
	if g.rng.Float64() < 0.06 {
		if name, data := c.standalone(); name != "" {
			return name, data, 0
		}
	}
	if len(t.stays) == 0 || (len(t.stays) < maxStays && g.rng.Float64() < 0.25) {
		t.stays = append(t.stays, c.newStay())
	}
	i := g.rng.IntN(len(t.stays))
	s := t.stays[i]
	c.stay = s
	name := s.plan[s.next]
	s.next++
	if s.next == len(s.plan) {
		t.stays = slices.Delete(t.stays, i, i+1)
	}
	return name, c.lifecycleData(name), s.n
}

func (c *ctx) newStay() *stay {
	g, t, rng := c.g, c.t, c.g.rng
	t.lifecycles++
	s := &stay{n: t.lifecycles}
	s.id = g.reservationID(t.idx, s.n)
	s.correlation = uuid.NewSHA1(uuid.NameSpaceURL, []byte("hotelbus-sim:"+t.name+"/"+s.id)).String()
	s.property = t.prof.properties[rng.IntN(len(t.prof.properties))]
	s.room = roomTypes[rng.IntN(len(roomTypes))]
	s.ratePlan = ratePlans[rng.IntN(len(ratePlans))]
	s.arrival = day(c.ts) // simulated time is compressed: guests book, stay and leave within the run
	s.nights = 1 + rng.IntN(5)
	s.adults = 1 + rng.IntN(2)
	s.childrenAges = []any{}
	if rng.IntN(4) == 0 {
		s.childrenAges = append(s.childrenAges, 1+rng.IntN(14))
	}
	base := t.prof.rate[0] + rng.Int64N(t.prof.rate[1]-t.prof.rate[0]+1)
	s.rate = c.round(base * 100 * s.room.factor / 100)
	s.roomID = fmt.Sprintf("%s-%02d%02d", s.property, 2+rng.IntN(15), 1+rng.IntN(30))
	s.confirmation = fmt.Sprintf("%s-%08d", s.property[:3], mix(uint64(g.tag), uint64(t.idx)<<32|uint64(s.n))%100_000_000)
	if len(t.known) == 0 || rng.Float64() < 0.4 {
		t.customers++
		s.customer = t.customers
		s.plan = append(s.plan, "customer.created")
		if rng.Float64() < 0.5 {
			s.member = &member{customer: s.customer}
			s.member.number = fmt.Sprintf("%s %04d %04d %04d", t.prof.code, t.idx%10000, s.n/10000%10000, s.n%10000)
			s.plan = append(s.plan, "member.registered")
		}
	} else {
		s.customer = t.known[rng.IntN(len(t.known))]
		s.member = t.memberOf[s.customer]
	}
	s.plan = append(s.plan, "reservation.created")
	for range rng.IntN(3) {
		s.plan = append(s.plan, "reservation.updated")
	}
	if rng.Float64() < 0.12 {
		s.plan = append(s.plan, "reservation.canceled")
		return s
	}
	s.plan = append(s.plan, "checkin_checkout.checked_in")
	for range rng.IntN(4) {
		s.plan = append(s.plan, "service.ordered")
		if rng.Float64() < 0.15 {
			s.plan = append(s.plan, "service.canceled")
		}
	}
	s.plan = append(s.plan, "billing.created", "billing.paid", "checkin_checkout.checked_out")
	if s.member != nil {
		s.plan = append(s.plan, "points.added")
	}
	if rng.Float64() < 0.35 {
		s.plan = append(s.plan, "feedback.submitted")
	}
	return s
}

// standalone returns an event outside the lifecycles, or "" when the tenant has nothing for the
// one drawn yet (no customer, member or user).
func (c *ctx) standalone() (string, map[string]any) {
	g, t, rng := c.g, c.t, c.g.rng
	ts := c.ts
	switch r := rng.IntN(100); {
	case r < 30:
		if len(t.known) == 0 {
			return "", nil
		}
		k := t.known[rng.IntN(len(t.known))]
		d := c.data("customer.updated")
		set(d, "customerId", g.customerID(t.idx, k), "email", c.email(k), "updatedAt", ts, "loyaltyMembershipId", c.memberID(t.memberOf[k]),
			"mergedCustomerIds", nil)
		return "customer.updated", d
	case r < 45:
		if len(t.members) == 0 {
			return "", nil
		}
		m := t.members[rng.IntN(len(t.members))]
		prev := m.tier
		if m.tier < len(tiers)-1 {
			m.tier++
		} else {
			m.tier--
		}
		d := c.data("member.status_changed")
		set(d, "membershipId", c.memberID(m), "membershipNumber", m.number, "programId", c.program(), "customerId", g.customerID(t.idx, m.customer),
			"previousTier", c.tier(prev), "newTier", c.tier(m.tier), "effectiveDate", day(ts),
			"tierExpirationDate", time.Date(ts.Year()+1, 12, 31, 0, 0, 0, 0, time.UTC), "changedAt", ts)
		return "member.status_changed", d
	case r < 65:
		var rich []*member
		for _, m := range t.members {
			if m.balance >= 1000 {
				rich = append(rich, m)
			}
		}
		if len(rich) == 0 {
			return "", nil
		}
		m := rich[rng.IntN(len(rich))]
		pts := 500 + 100*rng.Int64N(min(m.balance, 5000)/100-4)
		m.balance -= pts
		t.txns++
		t.orders++
		d := c.data("points.used")
		set(d, "transactionId", "ptx_"+g.ulid(t.idx, kindPoints, t.txns), "membershipId", c.memberID(m), "programId", c.program(),
			"customerId", g.customerID(t.idx, m.customer), "points", pts, "activityDate", day(ts),
			"sourceId", "ord_"+g.ulid(t.idx, kindOrder, t.orders), "monetaryValue", c.money(pts*t.prof.centsPerPoint),
			"balanceAfter", m.balance, "usedAt", ts)
		return "points.used", d
	case r < 73:
		t.users++
		prop := t.prof.properties[rng.IntN(len(t.prof.properties))]
		user := fmt.Sprintf("usr_%s_%04d", strings.ToLower(prop), t.users)
		d := c.data("auth.user_created")
		mail := fmt.Sprintf("staff%04d@%s.example", t.users, t.name)
		emails := clone(d["emails"]).([]any)
		set(emails[0].(map[string]any), "value", mail)
		set(d, "userId", user, "userName", mail, "emails", emails, "propertyIds", []any{prop}, "createdAt", ts)
		return "auth.user_created", d
	case r < 80:
		if t.users == 0 {
			return "", nil
		}
		prop := t.prof.properties[rng.IntN(len(t.prof.properties))]
		d := c.data("auth.permissions_changed")
		set(d, "userId", fmt.Sprintf("usr_%s_%04d", strings.ToLower(prop), 1+rng.IntN(t.users)), "changedAt", ts)
		set(d["scope"].(map[string]any), "propertyIds", []any{prop})
		return "auth.permissions_changed", d
	case r < 92:
		t.notices++
		prop := t.prof.properties[rng.IntN(len(t.prof.properties))]
		d := c.data("system.error")
		set(d, "instance", fmt.Sprintf("/tenants/%s/properties/%s/rate-pushes/rp_%s", t.name, prop, g.ulid(t.idx, kindIncident, t.notices)),
			"occurredAt", ts, "failedTraceId", g.hex(32, uint64(t.idx), kindIncident, t.notices), "occurrences", 1+rng.IntN(5))
		return "system.error", d
	default:
		t.notices++
		start := ts.Truncate(time.Hour).Add(48 * time.Hour)
		d := c.data("system.maintenance")
		set(d, "maintenanceId", fmt.Sprintf("mnt_%s_%s_%d", start.Format("2006_01_02"), strings.ReplaceAll(t.name, "-", "_"), t.notices),
			"scheduledStartAt", start, "scheduledEndAt", start.Add(2*time.Hour), "updatedAt", ts, "affectedTenantIds", []any{t.name})
		return "system.maintenance", d
	}
}

// lifecycleData fills the data of a lifecycle step of c.stay.
func (c *ctx) lifecycleData(name string) map[string]any {
	g, t, s, rng, ts := c.g, c.t, c.stay, c.g.rng, c.ts
	cus := g.customerID(t.idx, s.customer)
	d := c.data(name)
	switch name {
	case "customer.created":
		set(d, "customerId", cus, "email", c.email(s.customer), "createdAt", ts, "loyaltyMembershipId", nil)
		set(d["marketingConsent"].(map[string]any), "consentedAt", ts)
		t.known = append(t.known, s.customer)
	case "member.registered":
		m := s.member
		set(d, "membershipId", c.memberID(m), "membershipNumber", m.number, "programId", c.program(), "customerId", cus,
			"tier", c.tier(0), "enrollmentDate", day(ts), "enrollmentPropertyId", s.property, "registeredAt", ts)
		t.members = append(t.members, m)
		t.memberOf[m.customer] = m
	case "reservation.created", "reservation.updated":
		net := s.rate * int64(s.nights)
		set(d, "reservationId", s.id, "confirmationNumber", s.confirmation, "propertyId", s.property, "status", "CONFIRMED",
			"arrivalDate", s.arrival, "departureDate", s.arrival.AddDate(0, 0, s.nights), "roomTypeCode", s.room.code,
			"ratePlanCode", s.ratePlan, "adults", s.adults, "childrenAges", slices.Clone(s.childrenAges),
			"amountBeforeTax", c.money(net), "amountAfterTax", c.money(net+c.tax(net)), "companyId", nil)
		if s.roomAssigned {
			d["roomId"] = s.roomID
		} else {
			d["roomId"] = nil
		}
		g := d["primaryGuest"].(map[string]any)
		set(g, "customerId", cus, "email", c.email(s.customer), "loyaltyMembershipId", c.memberID(s.member))
		if name == "reservation.created" {
			s.createdAt = ts
			d["createdAt"] = ts
			break
		}
		changed := []any{"roomId"}
		if s.roomAssigned && rng.IntN(3) == 0 {
			s.nights++
			net = s.rate * int64(s.nights)
			set(d, "departureDate", s.arrival.AddDate(0, 0, s.nights), "amountBeforeTax", c.money(net), "amountAfterTax", c.money(net+c.tax(net)))
			changed = []any{"departureDate", "amountBeforeTax", "amountAfterTax"}
		}
		s.roomAssigned = true
		d["roomId"] = s.roomID
		c.user = fmt.Sprintf("usr_%s_%04d", strings.ToLower(s.property), 1+rng.IntN(40))
		set(d, "createdAt", s.createdAt, "updatedAt", ts, "changedFields", changed, "updatedBy", c.user)
	case "reservation.canceled":
		night := s.rate + c.tax(s.rate)
		set(d, "reservationId", s.id, "confirmationNumber", s.confirmation, "cancellationNumber", "CXL-"+s.confirmation,
			"channelReference", nil, "propertyId", s.property, "status", "CANCELED", "arrivalDate", s.arrival,
			"departureDate", s.arrival.AddDate(0, 0, s.nights), "customerId", cus, "canceledAt", ts,
			"cancellationFee", c.money(night), "refundAmount", nil)
	case "checkin_checkout.checked_in":
		docs := clone(d["identityDocuments"]).([]any)[:1]
		set(docs[0].(map[string]any), "documentId", "doc_"+g.ulid(t.idx, kindDocument, uint64(s.n)), "customerId", cus)
		set(d, "reservationId", s.id, "propertyId", s.property, "roomId", s.roomID, "roomTypeCode", s.room.code,
			"customerIds", []any{cus}, "adults", s.adults, "children", len(s.childrenAges), "checkedInAt", ts,
			"departureDate", s.arrival.AddDate(0, 0, s.nights), "identityDocuments", docs)
	case "service.ordered":
		t.orders++
		tmpl := c.g.types[name].data
		o := &order{id: "ord_" + g.ulid(t.idx, kindOrder, t.orders), serviceID: tmpl["serviceId"].(string), name: tmpl["serviceName"].(string),
			quantity: 1 + rng.IntN(3), unit: c.round(s.rate / int64(5+rng.IntN(20))), at: ts}
		s.orders = append(s.orders, o)
		set(d, "orderId", o.id, "roomId", s.roomID, "quantity", o.quantity, "price", c.money(o.unit),
			"totalPrice", c.money(o.unit*int64(o.quantity)), "reservationId", s.id, "customerId", cus, "propertyId", s.property,
			"orderedAt", ts, "scheduledAt", ts.Add(45*time.Minute), "conversationId", "cnv_"+g.ulid(t.idx, kindConversation, t.orders))
	case "service.canceled":
		o := s.orders[len(s.orders)-1]
		o.canceled = true
		set(d, "orderId", o.id, "roomId", s.roomID, "serviceId", o.serviceID, "reservationId", s.id, "customerId", cus,
			"propertyId", s.property, "canceledAt", ts, "refundAmount", c.money(o.unit*int64(o.quantity)))
	case "billing.created":
		c.bill(d, cus)
	case "billing.paid":
		set(d, "paymentId", "pay_"+g.ulid(t.idx, kindPayment, uint64(s.n)), "billId", s.billID, "propertyId", s.property,
			"reservationId", s.id, "customerId", cus, "amount", c.money(s.billGross), "originalAmount", nil, "state", "CHARGED",
			"kind", "PAYMENT", "chargedAt", ts, "balanceAfter", c.money(0))
	case "checkin_checkout.checked_out":
		set(d, "reservationId", s.id, "propertyId", s.property, "roomId", s.roomID, "customerIds", []any{cus},
			"arrivalDate", s.arrival, "checkedOutAt", ts, "nights", s.nights, "lateCheckOut", false,
			"openBalance", c.money(0), "billIds", []any{s.billID})
	case "points.added":
		m := s.member
		pts := s.billGross / t.prof.centsPerPoint
		m.balance += pts
		t.txns++
		set(d, "transactionId", "ptx_"+g.ulid(t.idx, kindPoints, t.txns), "membershipId", c.memberID(m), "programId", c.program(),
			"customerId", cus, "points", pts, "kind", "STAY", "qualifying", true, "activityDate", day(ts),
			"expiryDate", day(ts).AddDate(3, 0, 0), "sourceType", "BILL", "sourceId", s.billID, "promotionId", nil,
			"eligibleSpend", c.money(s.billGross), "balanceAfter", m.balance, "postedAt", ts)
	case "feedback.submitted":
		score := 5 - min(rng.IntN(8), 4)*rng.IntN(2)
		set(d, "feedbackId", "fbk_"+g.ulid(t.idx, kindFeedback, uint64(s.n)), "propertyId", s.property, "reservationId", s.id,
			"customerId", cus, "overallScore", score, "npsScore", max(0, 2*score-rng.IntN(3)), "completedAt", ts)
	}
	return d
}

// bill fills billing.created: a line per night and per service not canceled, 10% tax on each.
func (c *ctx) bill(d map[string]any, cus string) {
	g, t, s, ts := c.g, c.t, c.stay, c.ts
	tmplLines := d["lines"].([]any)
	nightLine, serviceLine := tmplLines[0].(map[string]any), tmplLines[len(tmplLines)-1].(map[string]any)
	var lines []any
	var netTotal, taxTotal int64
	add := func(tmpl map[string]any, quantity int, unit int64, desc string, at time.Time, service, orderID any) {
		net := unit * int64(quantity)
		tax := c.tax(net)
		netTotal += net
		taxTotal += tax
		l := clone(tmpl).(map[string]any)
		taxLine := clone(l["taxes"].([]any)[0]).(map[string]any)
		set(taxLine, "taxAmount", c.money(tax), "rateBasisPoints", 1000)
		set(l, "lineId", "chg_"+g.ulid(t.idx, kindLine, uint64(s.n)<<8|uint64(len(lines))), "serviceId", service, "orderId", orderID,
			"description", desc, "quantity", quantity, "unitAmount", c.money(unit), "netAmount", c.money(net),
			"taxes", []any{taxLine}, "grossAmount", c.money(net+tax), "consumedAt", at)
		lines = append(lines, l)
	}
	for i := range s.nights {
		night := s.arrival.AddDate(0, 0, i)
		add(nightLine, 1, s.rate, fmt.Sprintf("%s, %s (%s)", s.room.name, s.ratePlan, night.Format("2006-01-02")), night.Add(15*time.Hour), nil, nil)
	}
	for _, o := range s.orders {
		if !o.canceled {
			add(serviceLine, o.quantity, o.unit, o.name, o.at, o.serviceID, o.id)
		}
	}
	s.billID = "bil_" + g.ulid(t.idx, kindBill, uint64(s.n))
	s.billGross = netTotal + taxTotal
	acct := d["account"].(map[string]any)
	set(acct, "accountId", cus, "accountType", "CUSTOMER")
	set(d, "billId", s.billID, "billNumber", fmt.Sprintf("%s-%d-%06d", s.property, ts.Year(), s.n), "propertyId", s.property,
		"reservationId", s.id, "createdAt", ts, "dueAt", nil, "lines", lines, "netTotal", c.money(netTotal),
		"taxTotal", c.money(taxTotal), "grossTotal", c.money(s.billGross))
}

func (c *ctx) data(name string) map[string]any { return clone(c.g.types[name].data).(map[string]any) }

// money is a hotelbus.types.Money of cents in the tenant's currency.
func (c *ctx) money(cents int64) map[string]any {
	return map[string]any{"amount": big.NewRat(cents, 100), "currency": c.t.prof.currency}
}

// round rounds cents down to the currency's smallest amount.
func (c *ctx) round(cents int64) int64 { return cents / c.t.prof.unit * c.t.prof.unit }

// tax is 10% of net, rounded to the currency's smallest amount.
func (c *ctx) tax(net int64) int64 { return c.round(net / 10) }

func (c *ctx) email(customer int) string {
	return fmt.Sprintf("guest%05d@%s.example", customer, c.t.name)
}

func (c *ctx) program() string { return "prg_" + strings.ReplaceAll(c.t.name, "-", "_") }

func (c *ctx) tier(i int) map[string]any {
	return map[string]any{"code": tiers[i].code, "name": c.t.prof.brand + " Rewards " + tiers[i].name, "rank": i + 1}
}

// memberID returns the membership id of m, or nil.
func (c *ctx) memberID(m *member) any {
	if m == nil {
		return nil
	}
	return "mbr_" + c.g.ulid(c.t.idx, kindMember, uint64(m.customer))
}

func (g *Generator) customerID(tenant, customer int) string {
	return "cus_" + g.ulid(tenant, kindCustomer, uint64(customer))
}

func day(t time.Time) time.Time { return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC) }

// set assigns key/value pairs to m.
func set(m map[string]any, kv ...any) {
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
}

// clone deep-copies a value of the generic data form (see streams.Envelope).
func clone(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = clone(x)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = clone(x)
		}
		return out
	case *big.Rat:
		return new(big.Rat).Set(v)
	}
	return v
}
