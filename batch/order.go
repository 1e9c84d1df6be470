package batch

import "sort"

// nextDone is the finish number of the next shard to succeed.
func nextDone(m *Manifest) int {
	n := 0
	for _, s := range m.Shards {
		n = max(n, s.Done)
	}
	return n + 1
}

// markSucceeded records that shard i's part exists, numbering it in the order
// parts finish (once).
func markSucceeded(m *Manifest, i int) {
	s := &m.Shards[i]
	s.State = ShardSucceeded
	if s.Done == 0 {
		s.Done = nextDone(m)
	}
}

// FinishOrder returns the indexes of the succeeded shards in the order their
// parts finished. Shards succeeded before finish numbers were kept (numbered
// 0) come first, in input order. Each new success goes last, so the list only
// ever grows at its end.
func (m *Manifest) FinishOrder() []int {
	var out []int
	for i, s := range m.Shards {
		if s.State == ShardSucceeded {
			out = append(out, i)
		}
	}
	sort.SliceStable(out, func(a, b int) bool { return m.Shards[out[a]].Done < m.Shards[out[b]].Done })
	return out
}

// sizeParts records the stored size of each succeeded part not sized yet.
func (mg *Manager) sizeParts(id string) {
	m, err := mg.Status(id)
	if err != nil {
		return
	}
	sizes := map[int]int64{}
	for i, s := range m.Shards {
		if s.State == ShardSucceeded && s.Bytes == 0 {
			if obj, err := mg.st.Stat(mg.ctx, PartKey(id, s.Name)); err == nil {
				sizes[i] = obj.Size
			}
		}
	}
	if len(sizes) == 0 {
		return
	}
	if _, err := mg.update(id, func(m *Manifest) {
		for i, n := range sizes {
			m.Shards[i].Bytes = n
		}
	}); err != nil && mg.ctx.Err() == nil {
		mg.log.Warn("save part sizes", "job", id, "err", err)
	}
}
