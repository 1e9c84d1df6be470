package store_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/flightbatch/flightbatch/store"
	"github.com/flightbatch/flightbatch/store/storetest"
)

// s3Bucket returns the bucket of the S3-compatible test server
// (scripts/s3-server.sh writes its address and credentials to an env file).
// Without one the test is skipped, unless FLIGHTBATCH_REQUIRE_S3=1 says an S3
// run was asked for: then it fails, so that a run that tested nothing is never
// green.
func s3Bucket(t *testing.T) string {
	t.Helper()
	bucket := os.Getenv("FLIGHTBATCH_TEST_S3_BUCKET")
	if bucket == "" {
		if os.Getenv("FLIGHTBATCH_REQUIRE_S3") == "1" {
			t.Fatal("FLIGHTBATCH_REQUIRE_S3=1 but FLIGHTBATCH_TEST_S3_BUCKET is not set: start a server with scripts/s3-server.sh and source its env file")
		}
		t.Skip("FLIGHTBATCH_TEST_S3_BUCKET is not set; run scripts/test-s3.sh for the S3 tests")
	}
	return bucket
}

// randomPrefix names a fresh prefix, so runs never see each other's objects.
func randomPrefix(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "storetest-" + hex.EncodeToString(b)
}

// emptyOnCleanup deletes whatever the test left in s.
func emptyOnCleanup(t *testing.T, s *store.Store) {
	t.Cleanup(func() {
		ctx := context.Background() // t.Context is cancelled before cleanups run
		objs, err := s.List(ctx, "")
		if err != nil {
			t.Errorf("list for cleanup: %v", err)
			return
		}
		for _, o := range objs {
			if err := s.Delete(ctx, o.Key); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
}

func TestConformanceS3(t *testing.T) {
	bucket := s3Bucket(t)
	storetest.RunConformanceTests(t, func(t *testing.T) *store.Store {
		s := openForTest(t, "s3://"+bucket+"/"+randomPrefix(t))
		emptyOnCleanup(t, s)
		return s
	})
}

// TestS3OpenPrefix checks that Open reaches the server named by
// AWS_ENDPOINT_URL_S3 (with path-style addressing: the server lives at
// 127.0.0.1, so a virtual-hosted bucket name could not resolve) and that a
// prefixed store keeps its objects under the prefix.
func TestS3OpenPrefix(t *testing.T) {
	bucket := s3Bucket(t)
	if os.Getenv("AWS_ENDPOINT_URL_S3") == "" {
		t.Fatal("AWS_ENDPOINT_URL_S3 is not set: the env file of scripts/s3-server.sh sets it")
	}
	prefix := randomPrefix(t)
	for _, url := range []string{
		"s3://" + bucket + "/" + prefix,
		"s3://" + bucket + "/" + prefix + "/",
		"s3://" + bucket + "/" + prefix + "/nested/deeper",
	} {
		t.Run(url, func(t *testing.T) {
			s := openForTest(t, url)
			emptyOnCleanup(t, s)
			if err := s.WriteAll(t.Context(), "datasets/demo/shard-00000.arrow", []byte("shard")); err != nil {
				t.Fatalf("WriteAll: %v", err)
			}
			under := url[len("s3://"+bucket+"/"):]
			under = filepath.ToSlash(filepath.Clean(under))
			want := under + "/datasets/demo/shard-00000.arrow"

			whole := openForTest(t, "s3://"+bucket)
			got, err := whole.ReadAll(t.Context(), want)
			if err != nil || string(got) != "shard" {
				t.Fatalf("the unprefixed bucket's %q = %q, %v; want the object", want, got, err)
			}
			objs, err := whole.List(t.Context(), prefix+"/")
			if err != nil {
				t.Fatal(err)
			}
			var ks []string
			for _, o := range objs {
				ks = append(ks, o.Key)
			}
			if !slices.Equal(ks, []string{want}) {
				t.Fatalf("unprefixed List(%q) = %q, want [%q]", prefix+"/", ks, want)
			}
			// versitygw's posix backend stores an object as a plain file.
			if dir := os.Getenv("FLIGHTBATCH_TEST_S3_DIR"); dir != "" {
				b, err := os.ReadFile(filepath.Join(dir, bucket, filepath.FromSlash(want)))
				if err != nil || string(b) != "shard" {
					t.Fatalf("file of the object on the server: %q, %v", b, err)
				}
			}
		})
	}
}

// TestS3EndpointQuery checks that endpoint= in the URL overrides the
// environment's endpoint.
func TestS3EndpointQuery(t *testing.T) {
	bucket := s3Bucket(t)
	endpoint := os.Getenv("AWS_ENDPOINT_URL_S3")
	t.Setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:1") // nothing listens there
	s := openForTest(t, "s3://"+bucket+"/"+randomPrefix(t)+"?endpoint="+endpoint)
	emptyOnCleanup(t, s)
	if err := s.WriteAll(t.Context(), "k", []byte("v")); err != nil {
		t.Fatalf("WriteAll through endpoint=%s: %v", endpoint, err)
	}
	if _, err := s.ReadAll(t.Context(), "absent"); !errors.Is(err, store.ErrNotExist) {
		t.Fatalf("ReadAll of a missing key: %v, want store.ErrNotExist", err)
	}
}

// TestS3RetriesThroughOutage points a store at an endpoint that is down for
// 6 seconds (nothing listens on its port, as when the S3 server restarts) and
// checks that calls made during the outage succeed once it is back, instead of
// failing within milliseconds.
func TestS3RetriesThroughOutage(t *testing.T) {
	bucket := s3Bucket(t)
	target, err := url.Parse(os.Getenv("AWS_ENDPOINT_URL_S3"))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close() // the outage: connections to addr are refused
	prefix := randomPrefix(t)
	// Cleaned up through the real endpoint: the proxy is gone by then.
	emptyOnCleanup(t, openForTest(t, "s3://"+bucket+"/"+prefix))
	s := openForTest(t, "s3://"+bucket+"/"+prefix+"?endpoint=http://"+addr+"&retry=60s")

	const outage = 6 * time.Second
	start := time.Now()
	errs := make(chan error, 1)
	go func() {
		if err := s.WriteAll(context.Background(), "k", []byte("v")); err != nil {
			errs <- err
			return
		}
		_, err := s.ReadAll(context.Background(), "k")
		errs <- err
	}()
	time.Sleep(outage)
	lis, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	proxy := &http.Server{Handler: httputil.NewSingleHostReverseProxy(target)}
	go func() { _ = proxy.Serve(lis) }()
	defer proxy.Close()
	if err := <-errs; err != nil {
		t.Fatalf("a write and read during a %s outage failed: %v", outage, err)
	}
	if d := time.Since(start); d < outage {
		t.Fatalf("the write returned after %s, within the outage: it did not reach the store", d)
	}
}
