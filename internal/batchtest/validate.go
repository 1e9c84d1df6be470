package batchtest

import (
	"fmt"
	"regexp"
	"strings"
)

var (
	jobNameRE       = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$`)
	exitCodeGlobRE  = regexp.MustCompile(`^[0-9]*\*?$`)
	reasonGlobRE    = regexp.MustCompile(`^[A-Za-z0-9.:\s]*\*?$`)
	maxArraySize    = int32(10000)
	maxRetryRules   = 5
	maxGlobLength   = 512
	maxTags         = 50
	maxDescribeJobs = 100
)

func validateJobName(name string) error {
	if !jobNameRE.MatchString(name) {
		return fmt.Errorf("jobName %q must be 1 to 128 letters, numbers, hyphens or underscores, starting with a letter or number", name)
	}
	return nil
}

func validateRetryStrategy(rs *RetryStrategy) error {
	if rs == nil {
		return nil
	}
	if rs.Attempts != nil && (*rs.Attempts < 1 || *rs.Attempts > 10) {
		return fmt.Errorf("retryStrategy.attempts must be between 1 and 10, got %d", *rs.Attempts)
	}
	if len(rs.EvaluateOnExit) > maxRetryRules {
		return fmt.Errorf("retryStrategy.evaluateOnExit allows at most %d rules, got %d", maxRetryRules, len(rs.EvaluateOnExit))
	}
	for i, r := range rs.EvaluateOnExit {
		switch strings.ToUpper(r.Action) {
		case "RETRY", "EXIT":
		default:
			return fmt.Errorf("retryStrategy.evaluateOnExit[%d].action must be RETRY or EXIT, got %q", i, r.Action)
		}
		if r.OnExitCode == nil && r.OnReason == nil && r.OnStatusReason == nil {
			return fmt.Errorf("retryStrategy.evaluateOnExit[%d] needs onExitCode, onReason or onStatusReason", i)
		}
		for _, g := range []struct {
			field string
			val   *string
			re    *regexp.Regexp
		}{
			{"onExitCode", r.OnExitCode, exitCodeGlobRE},
			{"onReason", r.OnReason, reasonGlobRE},
			{"onStatusReason", r.OnStatusReason, reasonGlobRE},
		} {
			if g.val == nil {
				continue
			}
			if len(*g.val) > maxGlobLength || !g.re.MatchString(*g.val) {
				return fmt.Errorf("retryStrategy.evaluateOnExit[%d].%s %q is not a valid pattern", i, g.field, *g.val)
			}
		}
	}
	return nil
}

func validateTimeout(t *JobTimeout, minSeconds int32) error {
	if t == nil || t.AttemptDurationSeconds == nil {
		return nil
	}
	if *t.AttemptDurationSeconds < minSeconds {
		return fmt.Errorf("timeout.attemptDurationSeconds must be at least %d, got %d", minSeconds, *t.AttemptDurationSeconds)
	}
	return nil
}

func validateEnvironment(env []KeyValuePair) error {
	for _, kv := range env {
		if kv.Name == "" || strings.ContainsAny(kv.Name, "=\x00") {
			return fmt.Errorf("environment variable name %q is not valid", kv.Name)
		}
		if strings.HasPrefix(kv.Name, "AWS_BATCH") {
			return fmt.Errorf("environment variable %s: names starting with AWS_BATCH are reserved", kv.Name)
		}
	}
	return nil
}

func validateTags(tags map[string]string) error {
	if len(tags) > maxTags {
		return fmt.Errorf("at most %d tags are allowed, got %d", maxTags, len(tags))
	}
	for k, v := range tags {
		if len(k) < 1 || len(k) > 128 {
			return fmt.Errorf("tag key %q must be 1 to 128 characters", k)
		}
		if strings.HasPrefix(strings.ToLower(k), "aws:") {
			return fmt.Errorf("tag key %q: the aws: prefix is reserved", k)
		}
		if len(v) > 256 {
			return fmt.Errorf("tag %q: value must be at most 256 characters", k)
		}
	}
	return nil
}

// globMatch matches AWS Batch's evaluateOnExit patterns: an exact string, or
// a prefix followed by a single trailing asterisk.
func globMatch(pattern, s string) bool {
	if p, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(s, p)
	}
	return pattern == s
}
