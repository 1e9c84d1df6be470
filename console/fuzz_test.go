package console_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/flightbatch/flightbatch/console"
)

// FuzzJobsPageQuery sends any query to the jobs page: it answers 200 with at
// most MaxPageJobs rows, or 400 with a short message, and never fails
// otherwise.
func FuzzJobsPageQuery(f *testing.F) {
	for _, q := range []string{"", "limit=10", "limit=0", "limit=-1", "limit=99999999999999999999", "before=20261101T000000000Z-abcdef",
		"before=20261399T999999999Z-abcdef", "rows=1&limit=3", "before=%00", "limit=1&before=x&rows=1"} {
		f.Add(q)
	}
	h := console.New(console.Options{Jobs: longHistory(20), Metrics: http.NotFoundHandler(), Log: quiet})
	f.Fuzz(func(t *testing.T, q string) {
		req := httptest.NewRequest("GET", "/jobs", nil)
		req.URL.RawQuery = q
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		body := w.Body.String()
		switch w.Code {
		case http.StatusOK:
			if n := strings.Count(body, `<tr class="job"`); n > console.MaxPageJobs {
				t.Fatalf("query %q: %d rows", q, n)
			}
		case http.StatusBadRequest:
			if len(body) > 512 {
				t.Fatalf("query %q: a message of %d bytes", q, len(body))
			}
		default:
			t.Fatalf("query %q: %d %s", q, w.Code, body)
		}
	})
}

// FuzzJobPageQuery sends any query to a job's page: it answers 200 with at
// most MaxPageShards shards, or 400 with a short message, and never fails
// otherwise.
func FuzzJobPageQuery(f *testing.F) {
	for _, q := range []string{"", "limit=10", "limit=0", "limit=-1", "limit=99999999999999999999", "from=7", "from=-1",
		"from=99999999999999999999", "state=failed", "state=DONE", "state=%00", "rows=1&state=RUNNING&from=3&limit=2", "from=x&limit=1&state=x"} {
		f.Add(q)
	}
	m := manyShards(50)
	h := console.New(console.Options{Jobs: fakeJobs{m}, Metrics: http.NotFoundHandler(), Log: quiet})
	f.Fuzz(func(t *testing.T, q string) {
		req := httptest.NewRequest("GET", "/jobs/"+m.JobID, nil)
		req.URL.RawQuery = q
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		body := w.Body.String()
		switch w.Code {
		case http.StatusOK:
			if n := strings.Count(body, `<tr class="shard"`); n > console.MaxPageShards {
				t.Fatalf("query %q: %d shards", q, n)
			}
		case http.StatusBadRequest:
			if len(body) > 512 {
				t.Fatalf("query %q: a message of %d bytes", q, len(body))
			}
		default:
			t.Fatalf("query %q: %d %s", q, w.Code, body)
		}
	})
}
