package batch

import "time"

// Reported is what an executor last reported of the children of one handle,
// so that one whose poll finds every child can report only those that
// changed (ChangeReporter): Changes passes every child the first time, then
// only the children whose state, attempts or failed attempts changed since
// its previous call. A new Reported, as after a restart, reports every
// child again, which the manager's catch-up relies on. It is not safe for
// concurrent use: the executor calls it under its handle's lock.
type Reported struct {
	last map[int]childMark // by shard
}

// childMark is what tells a child's report from its previous one. An
// error's text is not part of it: HandOverErrors drops it from what the
// executor holds once reported, and only the first report gives it.
type childMark struct {
	state       ShardState
	attempts    int
	errors      int
	lastAttempt int
	lastAt      time.Time
}

func markOf(c Child) childMark {
	m := childMark{state: c.State, attempts: c.Attempts, errors: len(c.Errors)}
	if n := len(c.Errors); n > 0 {
		m.lastAttempt, m.lastAt = c.Errors[n-1].Attempt, c.Errors[n-1].At
	}
	return m
}

// Changes returns p with only the children that changed since the previous
// call (every child at the first), and remembers them as reported.
func (r *Reported) Changes(p Progress) Progress {
	if r.last == nil {
		r.last = make(map[int]childMark, len(p.Children))
		for _, c := range p.Children {
			r.last[c.Shard] = markOf(c)
		}
		return p
	}
	var out []Child
	for _, c := range p.Children {
		m := markOf(c)
		if old, ok := r.last[c.Shard]; !ok || old != m {
			r.last[c.Shard] = m
			out = append(out, c)
		}
	}
	p.Children = out
	return p
}
