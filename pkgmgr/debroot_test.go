package pkgmgr

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/patchbay/patchbay/internal/debroot"
)

func bookwormRoot(t *testing.T) string { return debroot.Bookworm(t) }

func query(t *testing.T, root, name string) string { return debroot.Query(t, root, name) }

func newApt(t *testing.T, root string) *Apt {
	return &Apt{R: &Runner{Root: root}, LockTimeout: 30 * time.Second, Changelogs: &Changelogs{CacheDir: filepath.Join(t.TempDir(), "cache")}}
}

var ctx = context.Background()
