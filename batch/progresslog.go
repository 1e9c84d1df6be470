package batch

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/flightbatch/flightbatch/store"
)

// A running job's progress reaches the store as a log: every SaveInterval,
// the shards that changed since the last write are written, whole, as one
// small object of their own (a segment, under ProgressPrefix, numbered in
// the order written), so that a write costs what changed rather than the
// job's size. The manifest is rewritten whole (folding the segments in) only
// at the job's submission, start, cancel request and end, and when the
// segments written since the manifest add up to half its size or number
// maxProgressSegments; the folded segments are deleted once the manifest
// that holds them is stored. The manifest records the last segment it holds
// (Manifest.ProgressSeq): a job's stored state is its manifest, then the
// later segments replayed in order. A segment that cannot be read loses only
// itself: each finished part and failed attempt has its own object in the
// store, from which a resumed job is caught up (catchUp).

// maxProgressSegments bounds the segments of a job between two writes of
// its manifest, and so the objects read to load it.
const maxProgressSegments = 256

// ProgressPrefix is the store prefix of the segments of a job's progress log.
func ProgressPrefix(jobID string) string { return Prefix + jobID + "/progress/" }

// segmentKey is the store key of segment seq of a job's progress log: the
// number is zero-padded, so that keys sort in the order written.
func segmentKey(jobID string, seq int64) string {
	return fmt.Sprintf("%s%016d.json", ProgressPrefix(jobID), seq)
}

// segmentSeq is the number of the segment at key, if key names one.
func segmentSeq(jobID, key string) (int64, bool) {
	num, ok := strings.CutSuffix(strings.TrimPrefix(key, ProgressPrefix(jobID)), ".json")
	if !ok || len(num) != 16 || !strings.HasPrefix(key, ProgressPrefix(jobID)) {
		return 0, false
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}

// progressSegment is one segment of a job's progress log: the records of
// the shards that changed since the previous write, as they were then.
type progressSegment struct {
	JobID  string         `json:"job_id"`
	Seq    int64          `json:"seq"`
	Shards []segmentShard `json:"shards"`
}

// segmentShard is one shard's record in a segment, with its index.
type segmentShard struct {
	Index int `json:"index"`
	ShardRecord
}

// encodeSegment encodes segment seq of m's progress log, holding the
// records of the shards at indices.
func encodeSegment(m *Manifest, seq int64, indices []int) ([]byte, error) {
	seg := progressSegment{JobID: m.JobID, Seq: seq, Shards: make([]segmentShard, 0, len(indices))}
	for _, i := range indices {
		seg.Shards = append(seg.Shards, segmentShard{Index: i, ShardRecord: m.Shards[i]})
	}
	data, err := json.Marshal(seg)
	if err != nil {
		return nil, fmt.Errorf("batch: encode the progress of job %s: %w", m.JobID, err)
	}
	return data, nil
}

// errBadSegment is wrapped by the errors of a segment that does not fit its
// job.
var errBadSegment = errors.New("progress segment does not fit its job")

// decodeSegment parses segment seq of job m's progress log and checks that
// every record fits m (index in range, same shard, a known state, attempts
// and errors within bounds): a damaged or foreign segment is refused whole.
func decodeSegment(m *Manifest, seq int64, data []byte) (*progressSegment, error) {
	var seg progressSegment
	if err := json.Unmarshal(data, &seg); err != nil {
		return nil, fmt.Errorf("job %s: decode progress segment %d: %w", m.JobID, seq, err)
	}
	if seg.JobID != m.JobID || seg.Seq != seq {
		return nil, fmt.Errorf("job %s: progress segment %d names job %.40q, segment %d: %w", m.JobID, seq, seg.JobID, seg.Seq, errBadSegment)
	}
	for _, s := range seg.Shards {
		if s.Index < 0 || s.Index >= len(m.Shards) || s.Name != m.Shards[s.Index].Name {
			return nil, fmt.Errorf("job %s: progress segment %d has shard %.40q at index %d, not a shard of the job: %w", m.JobID, seq, s.Name, s.Index, errBadSegment)
		}
		switch s.State {
		case ShardPending, ShardRunning, ShardSucceeded, ShardFailed, ShardCancelled:
		default:
			return nil, fmt.Errorf("job %s: progress segment %d gives shard %s the state %.20q: %w", m.JobID, seq, s.Name, s.State, errBadSegment)
		}
		if s.Attempts < 0 || s.AttemptBase < 0 || s.AttemptLimit < 0 || s.Done < 0 || s.Bytes < 0 {
			return nil, fmt.Errorf("job %s: progress segment %d has shard %s with negative counts: %w", m.JobID, seq, s.Name, errBadSegment)
		}
	}
	return &seg, nil
}

// applySegment replays a decoded segment on m. The input fields of a shard
// (its input, format, rows) are the request's and stay as they are.
func applySegment(m *Manifest, seg *progressSegment) {
	for _, s := range seg.Shards {
		cur := &m.Shards[s.Index]
		r := s.ShardRecord
		r.Name, r.Input, r.Format, r.InputRows = cur.Name, cur.Input, cur.Format, cur.InputRows
		*cur = r
	}
}

// errReadProgress is wrapped by the errors of a progress log that could not
// be listed: the store failed, the manifest is not damaged.
var errReadProgress = errors.New("cannot list the progress log")

// progressLog is what a manager keeps of a job's progress log in the store.
type progressLog struct {
	// seq is the number of the last segment written (or found).
	seq int64
	// segs are the keys of the segments the stored manifest does not hold.
	segs []string
	// segBytes is their size; manifestBytes the stored manifest's.
	segBytes, manifestBytes int64
	// retry holds the shards of a segment whose write failed.
	retry map[int]struct{}
}

// foldRule says when a job's progress log is folded into its manifest:
// when it holds segments segments, or (unless bySize is off) when the next
// segment would take it past half the manifest's size.
type foldRule struct {
	segments int
	noBySize bool
}

// fold says whether the next write of progress, of segment bytes, should
// rewrite the manifest instead.
func (l *progressLog) fold(r foldRule, segment int) bool {
	return len(l.segs) >= r.segments || (!r.noBySize && 2*(l.segBytes+int64(segment)) > l.manifestBytes)
}

// storedJob is a job's stored state as read from its manifest and progress
// log.
type storedJob struct {
	m   *Manifest
	log progressLog
	// stale are segments the manifest already holds (or that a final
	// manifest ignores): left by a write of the manifest whose deletion of
	// them was cut short.
	stale []string
	// damaged describes the segments that could not be replayed.
	damaged []string
}

// ReadManifest reads a job's stored state: its manifest, then the segments
// of its progress log the manifest does not hold, replayed in order (see
// ProgressPrefix). A segment that cannot be read or does not fit the job is
// skipped: the parts and attempt records a resumed job is caught up from
// hold what it said.
func ReadManifest(ctx context.Context, st *store.Store, jobID string) (*Manifest, error) {
	s, err := readStored(ctx, st, jobID)
	if err != nil {
		return nil, err
	}
	return s.m, nil
}

// readManifestFile reads and decodes a job's manifest alone.
func readManifestFile(ctx context.Context, st *store.Store, jobID string) (*Manifest, int, error) {
	data, err := st.ReadAll(ctx, ManifestKey(jobID))
	if err != nil {
		if errors.Is(err, store.ErrNotExist) {
			return nil, 0, fmt.Errorf("job %q: %w", jobID, ErrNotFound)
		}
		return nil, 0, fmt.Errorf("job %s: read manifest: %w", jobID, err)
	}
	m, err := decodeManifest(jobID, data)
	return m, len(data), err
}

// readStored reads a job's manifest and replays its progress log. A
// segment larger than this bounds is skipped unread: no write makes one
// (a segment past half the manifest's size is folded into it instead).
func readStored(ctx context.Context, st *store.Store, jobID string) (*storedJob, error) {
	m, size, err := readManifestFile(ctx, st, jobID)
	if err != nil {
		return nil, err
	}
	s := &storedJob{m: m, log: progressLog{seq: m.ProgressSeq, manifestBytes: int64(size)}}
	objs, err := st.List(ctx, ProgressPrefix(jobID))
	if err != nil {
		return nil, fmt.Errorf("job %s: list its progress: %w: %w", jobID, errReadProgress, err)
	}
	type segObj struct {
		key  string
		seq  int64
		size int64
	}
	var segs []segObj
	for _, o := range objs {
		if n, ok := segmentSeq(jobID, o.Key); ok {
			segs = append(segs, segObj{o.Key, n, o.Size})
		}
	}
	slices.SortFunc(segs, func(a, b segObj) int { return cmp.Compare(a.seq, b.seq) })
	limit := 2*int64(size) + 1<<20
	replayed := false
	for _, o := range segs {
		s.log.seq = max(s.log.seq, o.seq)
		if o.seq <= m.ProgressSeq || m.State.Terminal() {
			s.stale = append(s.stale, o.key)
			continue
		}
		s.log.segs = append(s.log.segs, o.key)
		s.log.segBytes += o.size
		if o.size > limit {
			s.damaged = append(s.damaged, fmt.Sprintf("%s: %d bytes, more than a segment of this job can hold", o.key, o.size))
			continue
		}
		data, err := st.ReadAll(ctx, o.key)
		if errors.Is(err, store.ErrNotExist) {
			continue // folded and deleted since it was listed
		}
		if err != nil {
			s.damaged = append(s.damaged, fmt.Sprintf("%s: %v", o.key, err))
			continue
		}
		seg, err := decodeSegment(m, o.seq, data)
		if err != nil {
			s.damaged = append(s.damaged, fmt.Sprintf("%s: %v", o.key, err))
			continue
		}
		applySegment(m, seg)
		replayed = true
	}
	if replayed {
		boundFailures(m)
		m.cache = manifestCache{}
	}
	return s, nil
}

// progressSegments lists the segments of a job's progress log: their keys
// and the highest number.
func progressSegments(ctx context.Context, st *store.Store, jobID string) (keys []string, last int64, err error) {
	objs, err := st.List(ctx, ProgressPrefix(jobID))
	if err != nil {
		return nil, 0, fmt.Errorf("list the progress of job %s: %w", jobID, err)
	}
	for _, o := range objs {
		if n, ok := segmentSeq(jobID, o.Key); ok {
			keys = append(keys, o.Key)
			last = max(last, n)
		}
	}
	return keys, last, nil
}
