package batch

// HasKeptResult reports whether the merged result of job id is kept for its
// current manifest (see keptResult).
func (mg *Manager) HasKeptResult(id string) bool { return mg.keptResult(id) != nil }

// BoundFailures bounds the failure text of m as the manager does at each
// update (see boundFailures).
func BoundFailures(m *Manifest) { boundFailures(m) }

// ManifestWrites is how many writes of jobs' state (manifests and segments
// of progress logs) the manager has made to the store, and their bytes.
func (mg *Manager) ManifestWrites() (n, bytes int64) {
	return mg.saved.n.Load() + mg.segments.n.Load(), mg.saved.bytes.Load() + mg.segments.bytes.Load()
}

// SegmentWrites is how many segments of progress logs the manager has
// written to the store, and their bytes.
func (mg *Manager) SegmentWrites() (n, bytes int64) {
	return mg.segments.n.Load(), mg.segments.bytes.Load()
}

// SegmentKey is the store key of segment seq of a job's progress log.
func SegmentKey(jobID string, seq int64) string { return segmentKey(jobID, seq) }

// MaxProgressSegments is maxProgressSegments.
const MaxProgressSegments = maxProgressSegments

// Abandon stops the manager as a crash would: the progress its store lacks
// is not written.
func (mg *Manager) Abandon() { mg.abandon() }

// FoldAfter makes the manager fold a job's progress log into its manifest
// only once it holds n segments, whatever their size. Call it before the
// manager has jobs.
func (mg *Manager) FoldAfter(n int) { mg.fold = foldRule{segments: n, noBySize: true} }
