package sqlite

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrInUse is returned by LockForServer when another process serves the
// database file.
var ErrInUse = errors.New("database in use by another patchbay server")

// LockForServer claims the database file for this server process, for as
// long as the database is open: an exclusive advisory lock (flock) on
// PATH.lock beside it, which holds this process's pid. A second server on
// the same file is refused (ErrInUse, naming the lock file and the pid
// holding it); the CLI's local commands (feeds import, admin token create
// --local, audit verify --local) do not take the lock and work beside a
// server. Calling it again on the same DB does nothing. The lock goes when
// the process does, however it ends.
func (d *DB) LockForServer() error {
	d.lockMu.Lock()
	defer d.lockMu.Unlock()
	if d.lock != nil {
		return nil
	}
	lp := d.path + ".lock"
	f, err := os.OpenFile(lp, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("lock database %s: %w", d.path, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return fmt.Errorf("lock database %s with %s: %w", d.path, lp, err)
		}
		who := "another process"
		if b, rerr := io.ReadAll(io.LimitReader(f, 32)); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && pid > 0 {
				who = "pid " + strconv.Itoa(pid)
			}
		}
		return fmt.Errorf("%s: %s holds its lock %s (%w): stop that server first, or give this one another --data-dir "+
			"(several servers share one database only on PostgreSQL)", d.path, who, lp, ErrInUse)
	}
	if err := writePID(f); err != nil {
		f.Close() // releases the lock
		return fmt.Errorf("lock database %s: %s: %w", d.path, lp, err)
	}
	d.lock = f
	return nil
}

// writePID replaces the lock file's content with this process's pid.
func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return err
}

// unlock releases the server's lock, if taken (the lock file stays:
// removing it would let a third process lock a new file while a second
// still waits on the old one).
func (d *DB) unlock() {
	d.lockMu.Lock()
	defer d.lockMu.Unlock()
	if d.lock != nil {
		d.lock.Close()
		d.lock = nil
	}
}
