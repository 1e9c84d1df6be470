// Package batchtest is a test-only stand-in for the AWS Batch control plane.
// It is not for production use.
//
// An Endpoint speaks the REST-JSON protocol of AWS Batch (the requests the
// aws-sdk-go-v2 batch client sends and the replies it parses) for SubmitJob,
// DescribeJobs, ListJobs, TerminateJob, CancelJob and RegisterJobDefinition,
// and runs every job attempt as a real local process, with the environment
// an AWS Batch container gets (AWS_BATCH_JOB_ID, AWS_BATCH_JOB_ARRAY_INDEX,
// AWS_BATCH_JOB_ATTEMPT, ...). Array jobs, retry strategies with
// evaluateOnExit rules, attempt timeouts, termination and a cap on running
// processes behave as they do on AWS Batch, so code that drives AWS Batch can
// be tested end to end on one machine.
//
// Go tests serve an Endpoint with net/http/httptest and point the SDK client
// at it:
//
//	ep, err := batchtest.New(&batchtest.Options{Definitions: defs})
//	srv := httptest.NewServer(ep)
//	defer srv.Close()
//	defer ep.Close()
//	client := batch.New(batch.Options{BaseEndpoint: aws.String(srv.URL), ...})
//
// By default the Endpoint is kinder than AWS Batch. Endpoint.SetBehaviours
// switches on, at any time, what AWS Batch does to its clients (see
// Behaviours):
//
//   - VisibilityDelay: delayed visibility after SubmitJob (DescribeJobs
//     returns an empty list and ListJobs omits the job for a while);
//   - Throttle: HTTP 429 TooManyRequestsException on the next calls of any
//     operation;
//   - SummaryLag: an array parent's statusSummary lagging its children;
//   - DropSubmitResponse: a SubmitJob that takes the job and loses its reply
//     (the connection closes without one), so the caller cannot tell whether
//     the job exists;
//   - StuckRunnable: jobs that stay RUNNABLE, with the statusReason AWS Batch
//     gives a blocked queue (no capacity, a request larger than any compute
//     environment), until it is switched off;
//   - Fail: attempts that end as AWS Batch reports a host terminated (Spot
//     reclaimed), an image that cannot be pulled, or a container killed out
//     of memory, with the status reason, container reason and exit code AWS
//     Batch gives; the retry strategy's evaluateOnExit rules apply to them.
//
// ListJobs with a JOB_NAME filter matches names without regard to case and
// lists the newest jobs first, as AWS Batch documents.
//
// Tests in other languages run the command in cmd/batchtest-endpoint, which
// prints "listening http://ADDR" as its first line of output.
//
// What it does not do: containers, images, resource isolation, job queues and
// compute environments as resources (any queue name is accepted), job
// dependencies, multi-node, EKS and ECS properties, fair-share scheduling.
package batchtest
