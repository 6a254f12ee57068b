package cli

import (
	"fmt"
	"os"
	"path/filepath"
)

// outputFile is a file a command writes whole or not at all: it is made
// beside its path and renamed over it by commit, so a command that fails
// part way leaves what was there before, never half of a new one.
type outputFile struct {
	*os.File
	path string
	done bool
}

// createOutput starts writing path (--output-file).
func createOutput(path string) (*outputFile, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return nil, fmt.Errorf("--output-file: %w", err)
	}
	return &outputFile{File: f, path: path}, nil
}

// commit puts the file in place (mode 0644).
func (o *outputFile) commit() error {
	o.done = true
	if err := o.Chmod(0o644); err != nil {
		o.Close()
		os.Remove(o.Name())
		return fmt.Errorf("--output-file: %w", err)
	}
	if err := o.Close(); err != nil {
		os.Remove(o.Name())
		return fmt.Errorf("--output-file: %w", err)
	}
	if err := os.Rename(o.Name(), o.path); err != nil {
		os.Remove(o.Name())
		return fmt.Errorf("--output-file: %w", err)
	}
	return nil
}

// abort removes what was written, unless committed (for defer).
func (o *outputFile) abort() {
	if !o.done {
		o.Close()
		os.Remove(o.Name())
	}
}
