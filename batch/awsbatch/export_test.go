package awsbatch

// SetMaxInlineShards sets the longest shard list passed in the environment
// and returns a function that restores it.
func SetMaxInlineShards(n int) (restore func()) {
	old := maxInlineShards
	maxInlineShards = n
	return func() { maxInlineShards = old }
}
