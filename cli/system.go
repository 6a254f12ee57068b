package cli

import (
	"context"
	"path/filepath"

	"github.com/patchbay/patchbay/agent"
	"github.com/patchbay/patchbay/inventory"
	"github.com/patchbay/patchbay/patch"
)

// systemUpdates asks the root's package manager which updates it offers
// (see agent.SystemUpdates), caching changelogs in the data dir.
func (e *env) systemUpdates(ctx context.Context, root string, distro *inventory.Distro, refresh bool) (string, []patch.Update, string) {
	return agent.SystemUpdates(ctx, root, distro, filepath.Join(e.dataDir, "cache"), refresh)
}
