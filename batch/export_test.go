package batch

// HasKeptResult reports whether the merged result of job id is kept for its
// current manifest (see keptResult).
func (mg *Manager) HasKeptResult(id string) bool { return mg.keptResult(id) != nil }

// BoundFailures bounds the failure text of m as the manager does at each
// update (see boundFailures).
func BoundFailures(m *Manifest) { boundFailures(m) }

// ManifestWrites is how many manifests the manager has written to the store,
// and their bytes.
func (mg *Manager) ManifestWrites() (n, bytes int64) { return mg.saved.n.Load(), mg.saved.bytes.Load() }

// Abandon stops the manager as a crash would: the progress its store lacks
// is not written.
func (mg *Manager) Abandon() { mg.abandon() }
