package child_test

import (
	"slices"
	"testing"

	"github.com/flightbatch/flightbatch/batch/child"
)

func TestShardList(t *testing.T) {
	for _, tc := range []struct {
		in   []int
		text string
	}{
		{[]int{0}, "0"},
		{[]int{0, 1, 2, 3}, "0-3"},
		{[]int{3, 7, 9}, "3,7,9"},
		{[]int{0, 1, 2, 5, 7, 8, 20}, "0-2,5,7-8,20"},
		{[]int{9, 3, 4}, "9,3-4"},
	} {
		if got := child.FormatList(tc.in); got != tc.text {
			t.Errorf("FormatList(%v) = %q, want %q", tc.in, got, tc.text)
		}
		got, err := child.ParseList(tc.text)
		if err != nil || !slices.Equal(got, tc.in) {
			t.Errorf("ParseList(%q) = %v, %v; want %v", tc.text, got, err, tc.in)
		}
	}
	for _, bad := range []string{"", "x", "3-1", "-1", "1,,a", "1-"} {
		if got, err := child.ParseList(bad); err == nil {
			t.Errorf("ParseList(%q) = %v, want an error", bad, got)
		}
	}
}

func TestPart(t *testing.T) {
	list := []int{2, 4, 5, 6, 9}
	want := [][]int{{2, 6}, {4, 9}, {5}}
	var all []int
	for i := range 3 {
		got := child.Part(list, i, 3)
		if !slices.Equal(got, want[i]) {
			t.Errorf("Part(%v, %d, 3) = %v, want %v", list, i, got, want[i])
		}
		all = append(all, got...)
	}
	slices.Sort(all)
	if !slices.Equal(all, list) {
		t.Errorf("the children's shards %v are not the list %v", all, list)
	}
	if got := child.Part(list, 0, 1); !slices.Equal(got, list) {
		t.Errorf("one child must run every shard, got %v", got)
	}
	if got := child.Part(list, 5, 5); len(got) != 0 {
		t.Errorf("a child beyond the list got %v", got)
	}
}
