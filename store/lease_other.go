//go:build !linux

package store

import "os"

// leaser is Linux's: elsewhere files are read with pread only.
type leaser struct{}

func newLeaser() *leaser { return nil }

func (l *leaser) stop() {}

type leasedFile struct{}

func newLeasedFile(*leaser, *os.File, func() error) *leasedFile { return nil }

func (lf *leasedFile) mapBlock(off, n int64) ([]byte, func(), bool) { return nil, nil, false }

func (lf *leasedFile) close() {}
