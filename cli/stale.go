package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/patchbay/patchbay/duration"
	"github.com/patchbay/patchbay/feeds"
	"github.com/spf13/pflag"
)

// defaultStaleAfter is how old a feed's data may be before scan warns and
// feeds status marks it stale: upstream OSV, KEV and EPSS change daily,
// so a week without a change means the feed is not being refreshed.
const defaultStaleAfter = duration.Duration(7 * 24 * time.Hour)

// durationFlag is a pflag.Value of a duration.Duration ("7d", "2w",
// "36h", "90s").
type durationFlag struct{ d *duration.Duration }

func (f durationFlag) String() string {
	if *f.d == 0 {
		return "0" // help leaves a zero default out
	}
	return f.d.String()
}
func (f durationFlag) Type() string { return "duration" }
func (f durationFlag) Set(s string) error {
	v, err := duration.Parse(s)
	if err != nil {
		return err
	}
	*f.d = v
	return nil
}

const staleAfterHelp = "a feed whose data (newest record, KEV release, EPSS score date; else its import) is older than this is stale (0: never)"

// feedTime is when a feed's data is from: its own date, or, when the feed
// carries none, when it was imported.
func feedTime(s feeds.SourceState) time.Time {
	if !s.DataTime.IsZero() && s.DataTime.Year() >= 1971 {
		return s.DataTime
	}
	return s.ImportedAt
}

// isStale tells whether a feed's data is older than after (0: never).
func isStale(s feeds.SourceState, now time.Time, after duration.Duration) bool {
	t := feedTime(s)
	return after > 0 && !t.IsZero() && now.Sub(t) > time.Duration(after)
}

// staleNames lists the stale feeds.
func staleNames(srcs []feeds.SourceState, now time.Time, after duration.Duration) []string {
	var out []string
	for _, s := range srcs {
		if isStale(s, now, after) {
			out = append(out, s.Source)
		}
	}
	return out
}

// staleWarning is scan's warning about the stale feeds it matched against
// ("" when none is): how old each is, and how to refresh them.
func staleWarning(srcs []feeds.SourceState, now time.Time, after duration.Duration, db string) string {
	var parts []string
	for _, s := range srcs {
		if isStale(s, now, after) {
			t := feedTime(s)
			parts = append(parts, fmt.Sprintf("%s %d days old (%s)", s.Source, int(now.Sub(t).Hours()/24), t.UTC().Format("2006-01-02")))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("patchbay: warning: stale advisory feeds in %s (data older than %s): %s; findings published since are missing. "+
		"Refresh with `patchbay feeds sync` (or `patchbay feeds import` of newer files); --stale-after sets the threshold",
		db, after, strings.Join(parts, ", "))
}

// spanVar defines a duration flag that takes days and weeks.
// Every duration flag of the CLI is one, so `--ttl 7d` works as the
// policy documents' "7d" do.
func spanVar(f *pflag.FlagSet, p *time.Duration, name string, value time.Duration, usage string) {
	*p = value
	f.Var(durationFlag{(*duration.Duration)(p)}, name, usage)
}
