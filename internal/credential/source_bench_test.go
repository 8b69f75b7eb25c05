package credential

import (
	"context"
	"io"
	"strconv"
	"testing"

	"github.com/brokercred/brokercred/internal/broker/brokertest"
)

// BenchmarkCacheHit measures a whole in-process cache hit (target, pod
// token, cache lookup, credential written), as a call by hand (no caller)
// and as client-go's call from a new process each time, which also records
// whom the token was served to: the price of refused-token detection.
func BenchmarkCacheHit(b *testing.B) {
	for _, tc := range []struct {
		name   string
		caller bool
	}{{"by hand", false}, {"client-go, new process", true}} {
		b.Run(tc.name, func(b *testing.B) {
			f := newFixture(b, brokertest.Options{})
			info := execInfoFor("null")
			if err := Run(context.Background(), f.opts, Env{ExecInfo: info}); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := range b.N {
				env := Env{Stdout: io.Discard, ExecInfo: info}
				if tc.caller {
					env.Caller = strconv.Itoa(i)
				}
				if err := Run(context.Background(), f.opts, env); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if n := len(f.broker.Requests()); n != 1 {
				b.Fatalf("broker requests = %d, want 1: the loop was not all hits", n)
			}
		})
	}
}
