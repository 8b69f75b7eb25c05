package credential

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/brokercred/brokercred/internal/cache"
)

// WriteCacheList prints entries as a table: target, broker host, identity,
// expiry and age; never a token. Every value is printed quoted when it holds
// anything but plain printable text, so an entry cannot forge a row.
func WriteCacheList(w io.Writer, entries []cache.Entry, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TARGET\tBROKER\tIDENTITY\tEXPIRES\tAGE")
	for _, e := range entries {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", plain(e.Label["target"]), plain(e.Label["broker"]), plain(e.Label["identity"]),
			e.Expiry.Local().Format(time.RFC3339), now.Sub(e.Issued).Round(time.Second))
	}
	return tw.Flush()
}

// plain is s as it is when it is printable ASCII without spaces or tabs,
// else quoted with every control character escaped.
func plain(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return strconv.Quote(s)
		}
	}
	return s
}

// TargetMatch selects the cache entries of target; "" selects all (nil).
func TargetMatch(target string) func(cache.Entry) bool {
	if target == "" {
		return nil
	}
	return func(e cache.Entry) bool { return e.Label["target"] == target }
}
