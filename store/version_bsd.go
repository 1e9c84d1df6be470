//go:build darwin || freebsd

package store

import (
	"os"
	"syscall"
)

// fileVersion returns fi's inode number and change time (in nanoseconds),
// which together tell two versions of a file apart.
func fileVersion(fi os.FileInfo) (ino uint64, ctime int64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return st.Ino, st.Ctimespec.Nano(), true
}
