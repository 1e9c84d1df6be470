package main

import (
	"context"
	"flag"
	"fmt"

	"github.com/flightbatch/flightbatch/dataset"
	"github.com/flightbatch/flightbatch/store"
)

func (m *Main) gen(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	storeURL := fs.String("store", "file://./flightbatch-data", "store to write to: file://DIR or s3://bucket/prefix")
	name := fs.String("name", "demo", "dataset name")
	shards := fs.Int("shards", 8, "number of shards")
	mb := fs.Int("mb", 60, "approximate size in MB")
	seed := fs.Uint64("seed", 1, "random seed")
	seconds := fs.Float64("seconds", 30, "seconds of signal per record")
	fsHz := fs.Float64("fs", 250, "sampling rate in Hz")
	replace := fs.Bool("replace", false, "replace the dataset if it exists")
	if err := fs.Parse(args); err != nil {
		return err
	}
	st, err := store.Open(ctx, *storeURL)
	if err != nil {
		return err
	}
	defer st.Close()
	cat := dataset.NewCatalog(st)
	if *replace {
		if _, err := cat.Get(ctx, *name); err == nil {
			w, err := cat.NewWriter(ctx, *name, dataset.DemoSchema, &dataset.WriterOptions{Replace: true})
			if err != nil {
				return err
			}
			if err := w.Abort(); err != nil {
				return err
			}
		}
	}
	opts := dataset.DemoOptions{Shards: *shards, Bytes: int64(*mb) << 20, Seed: *seed, Seconds: *seconds, FS: *fsHz}
	if err := dataset.GenerateDemo(ctx, cat, *name, opts); err != nil {
		return err
	}
	ds, err := cat.Get(ctx, *name)
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "wrote dataset %s: %d shards, %d records, %d bytes\n", *name, len(ds.Shards), ds.Rows(), ds.Bytes())
	return nil
}
