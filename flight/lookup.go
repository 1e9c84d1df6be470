package flight

import (
	"fmt"
	"net/url"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flightbatch/flightbatch/batch"

	"github.com/flightbatch/flightbatch/internal/clip"
)

// A job can be named in a ticket or descriptor by what it is rather than by
// its ID:
//
//	jobs/<name>                      the newest SUCCEEDED job of that name
//	jobs/latest?dataset=demo&function=psd&label=cohort=pd
//	                                 the newest SUCCEEDED job matching every
//	                                 parameter (none: the newest of all)
//
// Both take a shard or "shards" segment before the query, like an ID does
// (jobs/latest/shards?dataset=demo, jobs/beta-weekly/part-00001). The query's
// parameters are dataset, function, name, submitted_by, label (k=v,
// repeatable, all must match) and state (default SUCCEEDED; a state, a
// comma-separated list, or "any"). Names start with a lower-case letter and
// IDs with a digit, so the two never meet; "latest" is not a valid name.

// maxQueryLen bounds a lookup's query text.
const maxQueryLen = 4096

// cutQuery splits a "?query" off the last segment of a path.
func cutQuery(segs []string) ([]string, string, bool) {
	if len(segs) == 0 {
		return segs, "", false
	}
	last, query, ok := strings.Cut(segs[len(segs)-1], "?")
	if !ok {
		return segs, "", false
	}
	out := append(append([]string(nil), segs[:len(segs)-1]...), last)
	return out, query, true
}

// parseLookup completes the target of a jobs/ path whose second segment is not
// a job ID: a job name, or "latest" with its query.
func parseLookup(t target, query string, hasQuery bool) (target, error) {
	if hasQuery && t.name != "latest" {
		// Before the name's check: a job ID with a query is not a missing job.
		return target{}, invalidArg("jobs/%s?%s: a ?query goes with jobs/latest only", clip.String(t.name, clip.QuoteBytes), clip.String(query, clip.QuoteBytes))
	}
	q := batch.Query{States: []batch.State{batch.StateSucceeded}}
	switch {
	case t.name == "latest":
	case batch.ValidJobName(t.name) == nil:
		q.Name = t.name
	default:
		return target{}, status.Errorf(codes.NotFound, "job %s not found: job IDs look like 20261124T184501123Z-9f2c1a, job names like beta-weekly (jobs/latest?dataset=... finds the newest)", clip.Quote(t.name))
	}
	if hasQuery {
		if len(query) > maxQueryLen {
			return target{}, invalidArg("jobs/latest: the query is longer than %d bytes", maxQueryLen)
		}
		vals, err := url.ParseQuery(query)
		if err != nil {
			return target{}, invalidArg("jobs/latest?%s: %v", clip.String(query, clip.QuoteBytes), err)
		}
		if err := applyLookupQuery(&q, vals); err != nil {
			return target{}, err
		}
		t.query = query
	}
	t.lookup = &q
	return t, nil
}

// lookupParams are the parameters of a jobs/latest query.
var lookupParams = []string{"dataset", "function", "name", "submitted_by", "label", "state"}

func applyLookupQuery(q *batch.Query, vals url.Values) error {
	for k, vs := range vals {
		one := func() (string, error) {
			if len(vs) != 1 {
				return "", invalidArg("jobs/latest: %q is given %d times; give it once", k, len(vs))
			}
			return vs[0], nil
		}
		var err error
		switch k {
		case "dataset":
			q.Dataset, err = one()
		case "function":
			q.Function, err = one()
		case "name":
			q.Name, err = one()
		case "submitted_by":
			q.SubmittedBy, err = one()
		case "label":
			if len(vs) > batch.MaxLabels {
				return invalidArg("jobs/latest: %d labels: at most %d", len(vs), batch.MaxLabels)
			}
			q.Labels = map[string]string{}
			for _, kv := range vs {
				lk, lv, ok := strings.Cut(kv, "=")
				if !ok || lk == "" {
					return invalidArg("jobs/latest: label %s: use label=key=value", clip.Quote(kv))
				}
				q.Labels[lk] = lv
			}
		case "state":
			var s string
			if s, err = one(); err != nil {
				return err
			}
			q.States = nil
			if strings.EqualFold(s, "any") {
				break
			}
			for _, part := range strings.Split(s, ",") {
				st, perr := batch.ParseState(part)
				if perr != nil {
					return invalidArg("jobs/latest: %v (or \"any\")", perr)
				}
				q.States = append(q.States, st)
			}
		default:
			return invalidArg("jobs/latest: unknown parameter %s; the parameters are %s", clip.Quote(k), strings.Join(lookupParams, ", "))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// resolve replaces a lookup target's name with the ID of the job it means now.
func (s *Server) resolve(t target) (target, error) {
	if t.lookup == nil {
		return t, nil
	}
	sum, err := s.jobs.Lookup(*t.lookup)
	if err != nil {
		return t, status.Errorf(codes.NotFound, "%s: %s", describeLookup(t), err)
	}
	t.name, t.lookup, t.query = sum.Job.JobID, nil, ""
	return t, nil
}

func describeLookup(t target) string {
	states := "SUCCEEDED"
	if t.lookup != nil {
		parts := make([]string, len(t.lookup.States))
		for i, s := range t.lookup.States {
			parts[i] = string(s)
		}
		states = strings.Join(parts, " or ")
		if states == "" {
			states = "any"
		}
	}
	what := fmt.Sprintf("jobs/%s (the newest job in state %s", t.name, states)
	if t.query != "" {
		what = fmt.Sprintf("jobs/latest?%s (the newest job in state %s matching it", clip.String(t.query, clip.QuoteBytes), states)
	}
	return what + ")"
}
