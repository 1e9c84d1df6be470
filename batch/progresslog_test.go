package batch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/analysis"
	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/store"
)

// smallManifest is a running job of n pending shards, as submitted.
func smallManifest(n int) *batch.Manifest {
	at := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	m := &batch.Manifest{JobID: batch.NewJobID(at), Function: "psd", Dataset: "demo", DatasetVersion: "v1",
		Params: json.RawMessage(`{"fs":250}`), State: batch.StateRunning, MaxAttempts: 3, Executor: "local", CreatedAt: at}
	for i := range n {
		m.Shards = append(m.Shards, batch.ShardRecord{Name: fmt.Sprintf("part-%02d", i), Input: fmt.Sprintf("datasets/demo/v1/part-%02d.arrow", i),
			Format: dataset.FormatArrow, InputRows: 100, State: batch.ShardPending})
	}
	return m
}

// segment is the JSON of a segment of m's progress log.
func segment(m *batch.Manifest, seq int64, shards ...string) string {
	return fmt.Sprintf(`{"job_id":%q,"seq":%d,"shards":[%s]}`, m.JobID, seq, strings.Join(shards, ","))
}

// TestReadManifestReplaysProgress: a job's stored state is its manifest,
// then the segments of its progress log the manifest does not hold, in the
// order written. A segment that is damaged or does not fit the job is
// skipped alone; segments the manifest holds (ProgressSeq), and every
// segment of a job whose manifest is final, change nothing; a segment never
// changes a shard's input.
func TestReadManifestReplaysProgress(t *testing.T) {
	type shardWant struct {
		state    batch.ShardState
		attempts int
	}
	for _, tc := range []struct {
		name     string
		seq      int64            // the manifest's ProgressSeq
		final    bool             // the manifest is final (FAILED)
		segments map[int64]string // by number; %s is the job ID
		want     []shardWant
	}{
		{
			name: "in order",
			segments: map[int64]string{
				1: `{"index":0,"name":"part-00","state":"RUNNING","attempts":1}`,
				2: `{"index":0,"name":"part-00","state":"SUCCEEDED","attempts":1,"done":1}`,
				3: `{"index":1,"name":"part-01","state":"RUNNING","attempts":2,"errors":[{"attempt":1,"error":"exit status 1","at":"2026-11-29T10:00:01Z"}]}`,
			},
			want: []shardWant{{batch.ShardSucceeded, 1}, {batch.ShardRunning, 2}, {batch.ShardPending, 0}},
		},
		{
			name: "numbered from any start",
			segments: map[int64]string{
				9:  `{"index":0,"name":"part-00","state":"RUNNING","attempts":1}`,
				10: `{"index":0,"name":"part-00","state":"SUCCEEDED","attempts":1,"done":1}`,
			},
			want: []shardWant{{batch.ShardSucceeded, 1}, {batch.ShardPending, 0}, {batch.ShardPending, 0}},
		},
		{
			name: "damaged segments lose only themselves",
			segments: map[int64]string{
				1: `{"index":0,"name":"part-00","state":"SUCCEEDED","attempts":1,"done":1}`,
				2: `garbage`,
				3: `{"index":1,"name":"part-01","state":"FAILED","attempts":3}`,
				4: `{"index":2,"name":"part-99","state":"SUCCEEDED","attempts":1}`,
				5: `{"index":7,"name":"part-07","state":"SUCCEEDED","attempts":1}`,
				6: `{"index":2,"name":"part-02","state":"DONE","attempts":1}`,
				7: `{"index":2,"name":"part-02","state":"RUNNING","attempts":-1}`,
			},
			want: []shardWant{{batch.ShardSucceeded, 1}, {batch.ShardFailed, 3}, {batch.ShardPending, 0}},
		},
		{
			name: "segments the manifest holds",
			seq:  2,
			segments: map[int64]string{
				1: `{"index":0,"name":"part-00","state":"RUNNING","attempts":1}`,
				2: `{"index":1,"name":"part-01","state":"RUNNING","attempts":1}`,
				3: `{"index":2,"name":"part-02","state":"RUNNING","attempts":1}`,
			},
			want: []shardWant{{batch.ShardPending, 0}, {batch.ShardPending, 0}, {batch.ShardRunning, 1}},
		},
		{
			name:  "a final manifest",
			final: true,
			segments: map[int64]string{
				1: `{"index":0,"name":"part-00","state":"SUCCEEDED","attempts":1}`,
			},
			want: []shardWant{{batch.ShardFailed, 0}, {batch.ShardFailed, 0}, {batch.ShardFailed, 0}},
		},
		{
			name: "the input is the request's",
			segments: map[int64]string{
				1: `{"index":0,"name":"part-00","input":"datasets/other/x.arrow","input_rows":7,"state":"RUNNING","attempts":1}`,
			},
			want: []shardWant{{batch.ShardRunning, 1}, {batch.ShardPending, 0}, {batch.ShardPending, 0}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			st, err := store.Open(ctx, "mem://")
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			m := smallManifest(3)
			m.ProgressSeq = tc.seq
			if tc.final {
				m.State = batch.StateFailed
				for i := range m.Shards {
					m.Shards[i].State = batch.ShardFailed
				}
			}
			if err := batch.SaveManifest(ctx, st, m); err != nil {
				t.Fatal(err)
			}
			for seq, shards := range tc.segments {
				data := segment(m, seq, shards)
				if shards == "garbage" {
					data = "{not json"
				}
				if err := st.WriteAll(ctx, batch.SegmentKey(m.JobID, seq), []byte(data)); err != nil {
					t.Fatal(err)
				}
			}
			got, err := batch.ReadManifest(ctx, st, m.JobID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != m.State {
				t.Errorf("job state %s, want %s", got.State, m.State)
			}
			for i, w := range tc.want {
				s := got.Shards[i]
				if s.State != w.state || s.Attempts != w.attempts {
					t.Errorf("shard %s: %s after %d attempts, want %s after %d", s.Name, s.State, s.Attempts, w.state, w.attempts)
				}
				if in := m.Shards[i]; s.Name != in.Name || s.Input != in.Input || s.InputRows != in.InputRows || s.Format != in.Format {
					t.Errorf("shard %d: input %+v, want the request's %+v", i, s, in)
				}
			}
		})
	}
}

// TestManifestWithoutProgressLogLoadsUnchanged: a store written before
// jobs had progress logs (a manifest alone, as SaveManifest writes it, and
// no progress/ objects) loads exactly as stored.
func TestManifestWithoutProgressLogLoadsUnchanged(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m := smallManifest(3)
	at := m.CreatedAt.Add(time.Second)
	rows := int64(12)
	m.Shards[0].State, m.Shards[0].Attempts, m.Shards[0].Rows, m.Shards[0].Done, m.Shards[0].Bytes, m.Shards[0].FinishedAt = batch.ShardSucceeded, 1, &rows, 1, 4096, &at
	m.Shards[1].State, m.Shards[1].Attempts, m.Shards[1].AttemptBase = batch.ShardRunning, 2, 1
	m.Shards[1].Errors = []batch.AttemptError{{Attempt: 1, Error: "exit status 1", At: at}}
	if err := batch.SaveManifest(ctx, st, m); err != nil {
		t.Fatal(err)
	}
	stored, err := st.ReadAll(ctx, batch.ManifestKey(m.JobID))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(stored), "progress_seq") || strings.Contains(string(stored), "attempt_limit") {
		t.Fatalf("a manifest without progress log or loss names them: %s", stored)
	}
	got, err := batch.ReadManifest(ctx, st, m.JobID)
	if err != nil {
		t.Fatal(err)
	}
	again, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	if string(again) != string(stored) {
		t.Errorf("loaded as\n%s\nstored as\n%s", again, stored)
	}
}

// FuzzProgressSegment replays arbitrary bytes as a segment of a job's
// progress log: nothing may panic, and a segment refused changes nothing,
// one accepted changes only shards' progress, never their input.
func FuzzProgressSegment(f *testing.F) {
	m := smallManifest(3)
	f.Add([]byte(segment(m, 1, `{"index":0,"name":"part-00","state":"SUCCEEDED","attempts":1,"done":1}`)))
	f.Add([]byte(segment(m, 1, `{"index":2,"name":"part-02","state":"RUNNING","attempts":2,"errors":[{"attempt":1,"error":"x","at":"2026-11-29T10:00:01Z"}]}`)))
	f.Add([]byte(`{"job_id":"x","seq":1,"shards":[{"index":-1}]}`))
	f.Add([]byte(`{`))
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := store.Open(ctx, "mem://")
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		m := smallManifest(3)
		if err := batch.SaveManifest(ctx, st, m); err != nil {
			t.Fatal(err)
		}
		if err := st.WriteAll(ctx, batch.SegmentKey(m.JobID, 1), data); err != nil {
			t.Fatal(err)
		}
		got, err := batch.ReadManifest(ctx, st, m.JobID)
		if err != nil {
			t.Fatalf("a damaged segment failed the job's load: %v", err)
		}
		if got.JobID != m.JobID || got.State != m.State || len(got.Shards) != len(m.Shards) {
			t.Fatalf("a segment changed the job: %s %s, %d shards", got.JobID, got.State, len(got.Shards))
		}
		for i, s := range got.Shards {
			if in := m.Shards[i]; s.Name != in.Name || s.Input != in.Input || s.InputRows != in.InputRows || s.Format != in.Format {
				t.Fatalf("shard %d: input %+v, want the request's %+v", i, s, in)
			}
		}
	})
}

// TestStoreOfMainLoadsUnchanged loads manifests written by the server
// before jobs had progress logs (testdata/before-progress-log: a running
// job's manifest after a progress write, and that job's final manifest
// once cancelled): each reads back exactly as stored, and a manager
// recovers the final one as it was, writing nothing.
func TestStoreOfMainLoadsUnchanged(t *testing.T) {
	ctx := context.Background()
	for _, name := range []string{"running-manifest.json", "final-manifest.json"} {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "before-progress-log", name))
			if err != nil {
				t.Fatal(err)
			}
			var head struct {
				JobID string `json:"job_id"`
			}
			if err := json.Unmarshal(data, &head); err != nil {
				t.Fatal(err)
			}
			st, err := store.Open(ctx, "mem://")
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if err := st.WriteAll(ctx, batch.ManifestKey(head.JobID), data); err != nil {
				t.Fatal(err)
			}
			m, err := batch.ReadManifest(ctx, st, head.JobID)
			if err != nil {
				t.Fatal(err)
			}
			again, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, data) {
				t.Errorf("read back as\n%s\nstored as\n%s", again, data)
			}
			if !m.State.Terminal() {
				return
			}
			mg := batch.NewManager(dataset.NewCatalog(st), analysis.Builtins(), &crashing{}, &batch.Options{Log: quiet})
			defer mg.Close()
			if err := mg.Recover(ctx); err != nil {
				t.Fatal(err)
			}
			got, err := mg.Status(head.JobID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != m.State || got.Counts() != m.Counts() || got.Error != m.Error {
				t.Errorf("recovered %s %+v (%s), stored %s %+v (%s)", got.State, got.Counts(), got.Error, m.State, m.Counts(), m.Error)
			}
			after, err := st.ReadAll(ctx, batch.ManifestKey(head.JobID))
			if err != nil || !bytes.Equal(after, data) {
				t.Errorf("recovering the job changed its manifest (%v)", err)
			}
			if objs, err := st.List(ctx, batch.ProgressPrefix(head.JobID)); err != nil || len(objs) > 0 {
				t.Errorf("recovering the job wrote %d progress objects (%v)", len(objs), err)
			}
		})
	}
}

// TestRebuiltManifestHoldsItsProgressLog: a damaged manifest rebuilt from
// the job's request and parts (as a restarted server or `check --repair`
// rebuilds it) is newer than the segments of the job's progress log, which
// then no longer replay over it.
func TestRebuiltManifestHoldsItsProgressLog(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "mem://")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m := smallManifest(3)
	m.State = batch.StateSubmitted
	if err := batch.SaveRequest(ctx, st, m); err != nil {
		t.Fatal(err)
	}
	if err := st.WriteAll(ctx, batch.ManifestKey(m.JobID), []byte(`{"job_id":`)); err != nil {
		t.Fatal(err)
	}
	if err := st.WriteAll(ctx, batch.PartKey(m.JobID, "part-00"), []byte("part")); err != nil {
		t.Fatal(err)
	}
	seg := segment(m, 4, `{"index":0,"name":"part-00","state":"RUNNING","attempts":1}`)
	if err := st.WriteAll(ctx, batch.SegmentKey(m.JobID, 4), []byte(seg)); err != nil {
		t.Fatal(err)
	}
	if _, err := batch.ReadManifest(ctx, st, m.JobID); err == nil {
		t.Fatal("a truncated manifest was read")
	}
	rebuilt, err := batch.RebuildManifest(ctx, st, m.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if rebuilt.ProgressSeq != 4 || rebuilt.Shards[0].State != batch.ShardSucceeded {
		t.Fatalf("rebuilt with progress_seq %d, shard 0 %s; want 4 and SUCCEEDED", rebuilt.ProgressSeq, rebuilt.Shards[0].State)
	}
	if err := batch.SaveManifest(ctx, st, rebuilt); err != nil {
		t.Fatal(err)
	}
	got, err := batch.ReadManifest(ctx, st, m.JobID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Shards[0].State != batch.ShardSucceeded {
		t.Errorf("shard 0 is %s after the rebuild; an older segment replayed over it", got.Shards[0].State)
	}
}
