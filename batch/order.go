package batch

import "sort"

// markSucceeded records that shard i's part exists, numbering it in the order
// parts finish (once).
func markSucceeded(m *Manifest, i int) {
	s := &m.Shards[i]
	s.State = ShardSucceeded
	m.touch(i)
	if s.Done == 0 {
		c := m.caches()
		c.lastDone++
		s.Done = c.lastDone
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

// partSizes stats the parts of the shards that p has succeeded (with sweep,
// also those m has) and whose stored size m does not have yet, so that a
// part is listed with its size in the same update that lists it. A part that
// cannot be stat'ed stays unsized.
func (mg *Manager) partSizes(m *Manifest, p Progress, sweep bool) map[int]int64 {
	sizes := map[int]int64{}
	size := func(i int) {
		if _, done := sizes[i]; done || m.Shards[i].Bytes != 0 {
			return
		}
		if obj, err := mg.st.Stat(mg.ctx, PartKey(m.JobID, m.Shards[i].Name)); err == nil {
			sizes[i] = obj.Size
		}
	}
	if sweep {
		for i, s := range m.Shards {
			if s.State == ShardSucceeded {
				size(i)
			}
		}
	}
	for _, c := range p.Children {
		if c.Shard >= 0 && c.Shard < len(m.Shards) && c.State == ShardSucceeded {
			size(c.Shard)
		}
	}
	return sizes
}

// setSizes records the stored sizes of parts, by shard index, and says
// whether it changed m.
func setSizes(m *Manifest, sizes map[int]int64) bool {
	changed := false
	for i, n := range sizes {
		if i >= 0 && i < len(m.Shards) && m.Shards[i].Bytes == 0 {
			m.Shards[i].Bytes = n
			m.touch(i)
			changed = true
		}
	}
	return changed
}
