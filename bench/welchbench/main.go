// Command welchbench is a test and benchmark driver for the compute package.
//
// With -mode ref it reads one JSON case per line from standard input,
// {"x": [...], "fs": 250, "params": {...}} (params as in the psd action), and
// writes one line per case: {"freqs": [...], "psd": [...]} or {"error": "..."}.
// A Python test compares these with scipy.signal.welch.
//
// With -mode bench it times Welch PSDs of random float64 records on one
// goroutine and prints the throughput as JSON.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"time"

	"github.com/flightbatch/flightbatch/compute"
)

func main() {
	mode := flag.String("mode", "ref", "ref: JSON cases on stdin, results on stdout; bench: time PSDs")
	nperseg := flag.Int("nperseg", 256, "bench: nperseg")
	seconds := flag.Float64("seconds", 2, "bench: minimum time to run")
	records := flag.Int("records", 64, "bench: number of records")
	length := flag.Int("length", 60000, "bench: samples per record")
	flag.Parse()
	var err error
	switch *mode {
	case "ref":
		err = ref()
	case "bench":
		err = bench(*nperseg, *seconds, *records, *length)
	default:
		err = fmt.Errorf("unknown -mode %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "welchbench:", err)
		os.Exit(1)
	}
}

type refCase struct {
	X      []float64           `json:"x"`
	FS     *float64            `json:"fs"`
	Params compute.WelchParams `json:"params"`
}

func ref() error {
	in := bufio.NewReader(os.Stdin)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	dec := json.NewDecoder(in)
	enc := json.NewEncoder(out)
	for {
		var c refCase
		if err := dec.Decode(&c); err != nil {
			if err.Error() == "EOF" {
				return nil
			}
			return err
		}
		fs := 1.0
		if c.FS != nil {
			fs = *c.FS
		}
		var r any
		pl, err := compute.NewPlan(c.Params, len(c.X))
		if err != nil {
			r = map[string]string{"error": err.Error()}
		} else {
			r = map[string][]float64{
				"freqs": pl.Freqs(make([]float64, 0), fs),
				"psd":   pl.PSD(make([]float64, 0), c.X, fs),
			}
		}
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
}

func bench(nperseg int, seconds float64, records, length int) error {
	runtime.GOMAXPROCS(1)
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([][]float64, records)
	for i := range data {
		data[i] = make([]float64, length)
		for j := range data[i] {
			data[i][j] = rng.NormFloat64()
		}
	}
	pl, err := compute.NewPlan(compute.WelchParams{NPerSeg: &nperseg}, length)
	if err != nil {
		return err
	}
	dst := make([]float64, pl.NumFreqs())
	var sink float64
	start := time.Now()
	passes := 0
	for time.Since(start).Seconds() < seconds || passes == 0 {
		for _, x := range data {
			dst = pl.PSD(dst, x, 250)
			sink += dst[1]
		}
		passes++
	}
	el := time.Since(start).Seconds()
	samples := float64(passes * records * length)
	if math.IsNaN(sink) {
		return fmt.Errorf("NaN result")
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"nperseg": nperseg, "records": records, "length": length, "passes": passes,
		"seconds": el, "samples_per_second": samples / el,
	})
}
