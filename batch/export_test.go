package batch

// HasKeptResult reports whether the merged result of job id is kept for its
// current manifest (see keptResult).
func (mg *Manager) HasKeptResult(id string) bool { return mg.keptResult(id) != nil }

// BoundFailures bounds the failure text of m as the manager does at each
// update (see boundFailures).
func BoundFailures(m *Manifest) { boundFailures(m) }
