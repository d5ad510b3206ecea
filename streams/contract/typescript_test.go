package contract_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hotelbus/hotelbus/streams/contract"
)

// TestTypeScriptDeclarations checks the names the declarations promise: one data and one envelope
// type per event type and major version, the envelope, the gateway's request and the typed POST.
func TestTypeScriptDeclarations(t *testing.T) {
	k := load(t, "", nil)
	b, err := k.TypeScript()
	if err != nil {
		t.Fatal(err)
	}
	ts := string(b)
	want := []string{"export interface Envelope<", "export type PublishRequest<", "export type Publish<S extends SystemName>",
		"export type PublishBatch<S extends SystemName>",
		"export interface Accepted", "export interface Money", "export type Decimal = string;"}
	for _, et := range k.EventTypes {
		for _, sub := range et.Subjects {
			n := contract.TypeName(et.Name, sub.Major)
			want = append(want, "export interface "+n+"Data {", "export type "+n+"Event = Envelope<"+fmt.Sprintf("%q", et.Name))
		}
	}
	for _, w := range want {
		if !strings.Contains(ts, w) {
			t.Errorf("declarations lack %q", w)
		}
	}
}

// tsErrorRe matches a tsc diagnostic: "file(line,col): error TS2322: ...".
var tsErrorRe = regexp.MustCompile(`(?m)^([^\s(]+)\(\d+,\d+\): error (TS\d+)`)

// TestTypeScriptCompiles runs tsc --noEmit --strict (npm typescript) over the declarations and,
// per event type and major version, a module that types its example.json as the delivered event,
// as a gateway request (also with only what the gateway requires), and as an argument of its
// owner's Publish and PublishBatch; none may have an error. Each
// negative module (a Money amount as a number, an unknown enum symbol, a missing required field,
// another major's version, a system publishing a type it does not own) must have one. Needs the
// rig's npm tools (make test).
func TestTypeScriptCompiles(t *testing.T) {
	k := load(t, "", nil)
	decl, err := k.TypeScript()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("hotelbus.d.ts", string(decl))
	artifact(t, "hotelbus.d.ts", decl)
	files := []string{"hotelbus.d.ts"}
	var positives []string
	var paid map[string]any
	for _, et := range k.EventTypes {
		for _, sub := range et.Subjects {
			n := contract.TypeName(et.Name, sub.Major)
			ex := string(sub.Latest().Example)
			name := fmt.Sprintf("example-%s-v%d.ts", et.Name, sub.Major)
			var parsed struct {
				Data json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal(sub.Latest().Example, &parsed); err != nil {
				t.Fatal(err)
			}
			write(name, fmt.Sprintf(`import type { %[1]sEvent, PublishRequest, Publish, PublishBatch } from "./hotelbus";
export const delivered: %[1]sEvent = %[2]s;
export const request: PublishRequest<%[1]sEvent> = %[2]s;
export const minimal: PublishRequest<%[1]sEvent> = { eventType: %[4]q, data: %[5]s, metadata: { tenantId: "t" } };
declare const publish: Publish<%[3]q>;
declare const publishBatch: PublishBatch<%[3]q>;
export const accepted = publish(%[2]s);
export const batch = publishBatch([%[2]s, minimal]);
`, n, ex, et.Owner, et.Name, parsed.Data))
			files, positives = append(files, name), append(positives, name)
			if et.Name == "billing.paid" && sub.Major == 1 {
				_ = json.Unmarshal(sub.Latest().Example, &paid)
			}
		}
	}
	if paid == nil {
		t.Fatal("billing.paid v1 (the negative examples' base) is not in the catalog")
	}
	negative := func(mutate func(ev, data map[string]any)) string {
		var ev map[string]any
		b, _ := json.Marshal(paid)
		_ = json.Unmarshal(b, &ev)
		mutate(ev, ev["data"].(map[string]any))
		b, _ = json.MarshalIndent(ev, "", "  ")
		return string(b)
	}
	negatives := map[string]string{
		"negative-money-number.ts": `import type { BillingPaidV1Event } from "./hotelbus";
export const e: BillingPaidV1Event = ` + negative(func(_, d map[string]any) { d["amount"].(map[string]any)["amount"] = 253840 }) + ";\n",
		"negative-enum-symbol.ts": `import type { BillingPaidV1Event } from "./hotelbus";
export const e: BillingPaidV1Event = ` + negative(func(_, d map[string]any) { d["state"] = "SETTLED" }) + ";\n",
		"negative-missing-field.ts": `import type { BillingPaidV1Event } from "./hotelbus";
export const e: BillingPaidV1Event = ` + negative(func(_, d map[string]any) { delete(d, "paymentId") }) + ";\n",
		"negative-other-major.ts": `import type { BillingPaidV1Event } from "./hotelbus";
export const e: BillingPaidV1Event = ` + negative(func(e, _ map[string]any) { e["version"] = "2.0" }) + ";\n",
		"negative-not-owner.ts": `import type { Publish } from "./hotelbus";
declare const publish: Publish<"hotel-saas">;
export const accepted = publish(` + negative(func(map[string]any, map[string]any) {}) + ");\n",
	}
	for name, text := range negatives {
		write(name, text)
		files = append(files, name)
	}
	out, code := node(t, dir, append([]string{".bin/tsc", "--noEmit", "--strict", "--target", "es2022", "--module", "esnext",
		"--moduleResolution", "bundler", "--pretty", "false"}, files...)...)
	t.Logf("tsc exit %d:\n%s", code, out)
	errs := map[string][]string{}
	for _, m := range tsErrorRe.FindAllStringSubmatch(out, -1) {
		errs[m[1]] = append(errs[m[1]], m[2])
	}
	for _, name := range append([]string{"hotelbus.d.ts"}, positives...) {
		if len(errs[name]) > 0 {
			t.Errorf("%s: %d errors, want none", name, len(errs[name]))
		}
	}
	for name := range negatives {
		if len(errs[name]) == 0 {
			t.Errorf("%s compiled, want an error", name)
		}
	}
	if code == 0 {
		t.Error("tsc exit 0 with negative examples")
	}
	t.Logf("tsc errors per module (%d example modules): %v", len(positives), errs)
}
