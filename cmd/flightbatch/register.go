package main

import (
	"context"
	"fmt"

	"github.com/flightbatch/flightbatch/pkg/api"
)

// register registers a store prefix of EDF/BDF files as a dataset.
func (m *Main) register(ctx context.Context, args []string) error {
	fs, addr := m.clientFlags("register")
	var req api.RegisterRequest
	fs.StringVar(&req.Name, "dataset", "", "name of the new dataset")
	fs.StringVar(&req.Prefix, "prefix", "", "store prefix of the .edf/.bdf files (relative to the server's --store), e.g. raw/sleep/")
	fs.Float64Var(&req.EpochS, "epoch-s", 0, "epoch length in seconds (default: the whole recording)")
	fs.StringVar(&req.BadSpans, "bad-spans", "", "BAD annotation spans: drop (default: leave out epochs that touch one), nan or keep")
	fs.Float64Var(&req.ShardMB, "shard-mb", 0, "data records per shard, in MiB (default 64)")
	fs.IntVar(&req.Shards, "shards", 0, "at least this many shards, when the epochs allow")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 1 && req.Prefix == "" {
		req.Prefix = pos[0]
	} else if len(pos) > 0 {
		return fmt.Errorf("register: give the prefix once, as --prefix or as the one argument")
	}
	if req.Name == "" || req.Prefix == "" {
		return fmt.Errorf("register: give --dataset NAME and a prefix, e.g. flightbatch register --dataset sleep raw/sleep/")
	}
	c, err := m.dial(ctx, *addr)
	if err != nil {
		return err
	}
	defer c.Close()
	res, err := c.Register(ctx, req)
	if err != nil {
		return err
	}
	bids := ""
	if res.BIDS {
		bids = " (BIDS)"
	}
	fmt.Fprintf(m.Stdout, "registered %s%s: %d files, %d shards, %d rows, %d bytes read in place\n", res.Dataset, bids, res.Files, res.Shards, res.Rows, res.Bytes)
	return nil
}
