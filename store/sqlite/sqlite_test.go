package sqlite

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/patchbay/patchbay/store/storetest"
)

func TestFeedsContract(t *testing.T) {
	storetest.Feeds(t, func(t *testing.T) storetest.FeedStore {
		db, err := Open(context.Background(), filepath.Join(t.TempDir(), "patchbay.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}
