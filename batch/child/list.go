package child

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/store"
)

// MaxListShards bounds how many indices a shard list may expand to, so that a
// malformed list ("0-999999999999") cannot exhaust memory.
const MaxListShards = 1 << 22

// DefaultMaxInline is the longest shard list (in characters) EncodeList
// passes inline in the environment by default.
const DefaultMaxInline = 4096

// FormatList writes shard indices compactly, in the form ParseList reads:
// comma-separated indices, with runs of consecutive indices as ranges
// ("0-9999,10003,10007-10010"). The order is kept.
func FormatList(shards []int) string {
	var b strings.Builder
	for i := 0; i < len(shards); {
		j := i
		for j+1 < len(shards) && shards[j+1] == shards[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(shards[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(shards[j]))
		}
		i = j + 1
	}
	return b.String()
}

// ParseList reads a list written by FormatList. Errors wrap ErrContract.
func ParseList(s string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("shard list: %q is not a shard index or a range A-B: %w", short(part), ErrContract)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("shard list: %q is not a range A-B with A <= B: %w", short(part), ErrContract)
			}
		}
		if b-a >= MaxListShards-len(out) {
			return nil, fmt.Errorf("shard list: more than %d shards: %w", MaxListShards, ErrContract)
		}
		for i := a; i <= b; i++ {
			out = append(out, i)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("shard list: no shard given: %w", ErrContract)
	}
	return out, nil
}

// Part is the part of list that child index of children runs: list[index],
// list[index+children], ... A start with more shards than an executor has
// children gives each child several shards this way.
func Part(list []int, index, children int) []int {
	if children < 1 {
		children = 1
	}
	var out []int
	for i := index; i >= 0 && i < len(list); i += children {
		out = append(out, list[i])
	}
	return out
}

// EncodeList returns the value of EnvShards for the children of job jobID
// running shards: the list itself when it has at most maxInline characters
// (DefaultMaxInline when maxInline <= 0), else "@KEY", with the list written
// to the store at KEY, a key under the job's prefix.
func EncodeList(ctx context.Context, st *store.Store, jobID string, shards []int, maxInline int) (string, error) {
	if maxInline <= 0 {
		maxInline = DefaultMaxInline
	}
	list := FormatList(shards)
	if len(list) <= maxInline {
		return list, nil
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	key := listPrefix(jobID) + hex.EncodeToString(b[:]) + ".txt"
	if err := st.WriteAll(ctx, key, []byte(list)); err != nil {
		return "", fmt.Errorf("child: write the shard list of job %s: %w", jobID, err)
	}
	return "@" + key, nil
}

// DecodeList reads a value of EnvShards for job jobID: an inline list, or
// "@KEY" read from st (KEY must lie under the job's prefix). Errors a retry
// cannot cure wrap ErrContract.
func DecodeList(ctx context.Context, st *store.Store, jobID, value string) ([]int, error) {
	list := value
	if key, ok := keyed(value); ok {
		if !strings.HasPrefix(key, listPrefix(jobID)) || strings.Contains(key, "..") {
			return nil, fmt.Errorf("%s: key %q is not a shard list of job %s: %w", EnvShards, short(key), jobID, ErrContract)
		}
		data, err := st.ReadAll(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("%s: read %s: %w", EnvShards, key, err)
		}
		list = string(data)
	}
	shards, err := ParseList(list)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvShards, err)
	}
	return shards, nil
}

// listPrefix is where a job's long shard lists are kept.
func listPrefix(jobID string) string { return batch.Prefix + jobID + "/children/" }
