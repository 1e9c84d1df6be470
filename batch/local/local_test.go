package local_test

import (
	"context"
	"testing"

	"github.com/flightbatch/flightbatch/batch"
	"github.com/flightbatch/flightbatch/batch/executortest"
	"github.com/flightbatch/flightbatch/batch/local"
	"github.com/flightbatch/flightbatch/store"
)

func TestConformance(t *testing.T) {
	executortest.RunConformanceTests(t, func(t *testing.T, faults string) *executortest.Harness {
		st, err := store.Open(context.Background(), "file://"+t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		fault, err := batch.ParseFaults(faults)
		if err != nil {
			t.Fatal(err)
		}
		fns, err := batch.ReadFunctionsFile(executortest.FunctionsFile(t))
		if err != nil {
			t.Fatal(err)
		}
		reg := batch.NewRegistry()
		for _, f := range fns {
			reg.Register(f)
		}
		w := &batch.Worker{Store: st, Functions: reg, Fault: fault}
		return &executortest.Harness{Store: st, Executor: local.New(w.RunShard, 2)}
	})
}
