package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/patchbay/patchbay/agent"
	"github.com/patchbay/patchbay/internal/progress"
	"github.com/patchbay/patchbay/internal/table"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/patch"
)

// systemUpdates asks the root's package manager which updates it offers
// (see agent.SystemUpdates), caching changelogs in the user's cache dir
// (changelogCacheDir), so every run and data dir reads each once. Reading
// the changelogs not cached yet downloads a .deb each from the archive apt
// names: that stage reports its progress on stderr and says it needs the
// network; offline the updates are listed without those CVEs.
// changelogCacheDir is where changelogs read are kept: patchbay in the
// user's cache dir ($XDG_CACHE_HOME, ~/.cache), shared by every data dir
// (a changelog is the same whichever data dir asked for it); the data
// dir's cache when there is none.
func (e *env) changelogCacheDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "patchbay")
	}
	return filepath.Join(e.dataDir, "cache")
}

func (e *env) systemUpdates(ctx context.Context, root string, distro *inventory.Distro, refresh bool) (string, []patch.Update, string) {
	prog := newProgress(e)
	what, needs := "asking apt for updates", ""
	if refresh {
		what, needs = "apt-get update, then asking apt for updates", "needs the network: the archives of the root's apt sources"
	}
	ask := prog.Start(what, needs)
	var st *progress.Stage
	v := agent.SystemUpdatesWith(ctx, root, distro, agent.UpdateOptions{CacheDir: e.changelogCacheDir(), Refresh: refresh,
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
