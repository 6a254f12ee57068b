package cli

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/patchbay/patchbay/agent"
	"github.com/patchbay/patchbay/internal/progress"
	"github.com/patchbay/patchbay/internal/table"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/patch"
)

// systemUpdates asks the root's package manager which updates it offers
// (see agent.SystemUpdates), caching changelogs in the data dir. Reading
// the changelogs not cached yet downloads a .deb each from the archive apt
// names: that stage reports its progress on stderr and says it needs the
// network; offline the updates are listed without those CVEs.
func (e *env) systemUpdates(ctx context.Context, root string, distro *inventory.Distro, refresh bool) (string, []patch.Update, string) {
	prog := newProgress(e)
	what, needs := "asking apt for updates", ""
	if refresh {
		what, needs = "apt-get update, then asking apt for updates", "needs the network: the archives of the root's apt sources"
	}
	ask := prog.Start(what, needs)
	var st *progress.Stage
	v := agent.SystemUpdatesWith(ctx, root, distro, agent.UpdateOptions{CacheDir: filepath.Join(e.dataDir, "cache"), Refresh: refresh,
		Progress: func(done, total int) {
			if st == nil {
				ask.End(fmt.Sprintf("%d changelogs to read", total))
				st = prog.Start("reading changelogs", "needs the Debian mirror deb.debian.org")
			}
			st.Update(done, total)
		}})
	outcome := table.Plural(len(v.Updates), "update")
	if v.Unread > 0 {
		outcome += fmt.Sprintf("; %d without their changelog's CVEs, listed all the same (%s)", v.Unread, v.FirstUnread)
	}
	if v.Problem != "" {
		outcome = "failed"
	}
	if st != nil {
		st.End(outcome)
	} else {
		ask.End(outcome)
	}
	return v.Manager, v.Updates, v.Problem
}
