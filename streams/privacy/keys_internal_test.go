package privacy

import (
	"testing"
	"time"
)

// TestSealersKeepOnlyCurrentAnswers: sealKey's answer is not kept when the subject's keys changed
// while it was being found (a Forget between the lookup and the store), and the kept answers
// never outnumber KeyCacheSize.
func TestSealersKeepOnlyCurrentAnswers(t *testing.T) {
	k := &Keys{cfg: keysConfig{cacheSize: 2, cacheTTL: time.Minute, now: time.Now}}
	a := subjectRef{"sakura-hotels", "cus_a"}
	k.mu.Lock()
	gen := k.gen
	k.changed(a.tenant, a.subject)
	k.mu.Unlock()
	k.keepSealer(a, gen, KeyID{1}, nil)
	if _, ok := k.sealers.Load(a); ok {
		t.Error("an answer found before a change of the subject's keys was kept")
	}
	for i, s := range []string{"cus_a", "cus_b", "cus_c", "cus_d", "cus_e"} {
		k.keepSealer(subjectRef{"sakura-hotels", s}, k.gen, KeyID{byte(i)}, nil)
		n := 0
		k.sealers.Range(func(any, any) bool { n++; return true })
		if n > 2 || int64(n) != k.sealerCount.Load() {
			t.Fatalf("after %d answers: %d kept, counted %d; want at most 2", i+1, n, k.sealerCount.Load())
		}
	}
}
