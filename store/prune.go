package store

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// RemoveEmptyDirs removes the directories at and under prefix that hold no
// file: a file store keeps a directory after its last object is deleted,
// which would leave an empty tree behind. Other stores have no directories.
func (s *Store) RemoveEmptyDirs(prefix string) error {
	if !s.file {
		return nil
	}
	root := strings.TrimPrefix(s.url, "file://")
	rel := filepath.FromSlash(strings.Trim(prefix, "/"))
	if rel == "" || !filepath.IsLocal(rel) {
		return nil
	}
	top := filepath.Join(root, rel)
	var dirs []string
	err := filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return s.wrap("remove empty directories", prefix, err)
	}
	// Deepest first; a directory that still holds something stays.
	slices.Reverse(dirs)
	for _, d := range dirs {
		if err := os.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) && !isNotEmpty(d) {
			return s.wrap("remove empty directory", prefix, err)
		}
	}
	return nil
}

// isNotEmpty reports whether directory d holds an entry.
func isNotEmpty(d string) bool {
	entries, err := os.ReadDir(d)
	return err == nil && len(entries) > 0
}
