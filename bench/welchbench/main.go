// Command welchbench is a test and benchmark driver for the compute package.
//
// With -mode ref it reads one JSON case per line from standard input,
// {"x": [...], "fs": 250, "params": {...}} (params as in the psd action), and
// writes one line per case: {"freqs": [...], "psd": [...]} or {"error": "..."}.
// A Python test compares these with scipy.signal.welch.
//
// With -mode bench it times Welch (or multitaper) PSDs of float64 records on
// one goroutine (GOMAXPROCS=1), after one untimed pass, and prints the
// throughput as JSON, per second of wall time and per second of the process's
// CPU time. The records are random, or read from -in (records x length
// little-endian float64, row after row); with -out the PSDs of every record are
// written there afterwards in the same layout (records x frequencies), so that
// a benchmark can check them against its reference.
package main

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"time"

	"github.com/flightbatch/flightbatch/compute"
)

func main() {
	mode := flag.String("mode", "ref", "ref: JSON cases on stdin, results on stdout; bench: time PSDs")
	nperseg := flag.Int("nperseg", 256, "bench: nperseg")
	seconds := flag.Float64("seconds", 2, "bench: minimum time to run")
	records := flag.Int("records", 64, "bench: number of records")
	length := flag.Int("length", 60000, "bench: samples per record")
	method := flag.String("method", "welch", "bench: welch, or multitaper (MNE's defaults: NW 4, low_bias, whole record)")
	in := flag.String("in", "", "bench: read the records from this file (records x length float64, little-endian)")
	out := flag.String("out", "", "bench: write every record's PSD to this file (records x frequencies float64, little-endian)")
	flag.Parse()
	var err error
	switch *mode {
	case "ref":
		err = ref()
	case "bench":
		err = bench(*method, *nperseg, *seconds, *records, *length, *in, *out)
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
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<30)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	for in.Scan() {
		if len(in.Bytes()) == 0 {
			continue
		}
		if _, err := out.Write(append(refOne(in.Bytes()), '\n')); err != nil {
			return err
		}
	}
	return in.Err()
}

// refOne computes one case and returns its output line; a malformed case or
// invalid parameters give {"error": ...}.
func refOne(line []byte) []byte {
	var c refCase
	if err := json.Unmarshal(line, &c); err != nil {
		return errorLine(err)
	}
	fs := 1.0
	if c.FS != nil {
		fs = *c.FS
	}
	pl, err := compute.NewPlan(c.Params, len(c.X))
	if err != nil {
		return errorLine(err)
	}
	b := []byte(`{"freqs":`)
	b = appendFloats(b, pl.Freqs(nil, fs))
	b = append(b, `,"psd":`...)
	b = appendFloats(b, pl.PSD(nil, c.X, fs))
	return append(b, '}')
}

func errorLine(err error) []byte {
	b, _ := json.Marshal(map[string]string{"error": err.Error()})
	return b
}

// appendFloats writes f as a JSON array that may hold NaN, Infinity and
// -Infinity, as Python's json module reads them.
func appendFloats(b []byte, f []float64) []byte {
	b = append(b, '[')
	for i, v := range f {
		if i > 0 {
			b = append(b, ',')
		}
		switch {
		case math.IsNaN(v):
			b = append(b, "NaN"...)
		case math.IsInf(v, 1):
			b = append(b, "Infinity"...)
		case math.IsInf(v, -1):
			b = append(b, "-Infinity"...)
		default:
			b = strconv.AppendFloat(b, v, 'g', -1, 64)
		}
	}
	return append(b, ']')
}

func bench(method string, nperseg int, seconds float64, records, length int, in, out string) error {
	runtime.GOMAXPROCS(1)
	data, err := records64(in, records, length)
	if err != nil {
		return err
	}
	pl, err := compute.NewPlan(compute.WelchParams{NPerSeg: &nperseg}, length)
	if err != nil {
		return err
	}
	dst := make([]float64, pl.NumFreqs())
	var cache compute.TaperCache
	psd := func(x []float64) ([]float64, error) {
		if method == "multitaper" {
			return compute.Multitaper(dst[:0], x, 250, compute.MultitaperParams{LowBias: true}, &cache)
		}
		return pl.PSD(dst, x, 250), nil
	}
	var sink float64
	pass := func() error {
		for _, x := range data {
			if dst, err = psd(x); err != nil {
				return err
			}
			sink += dst[1]
		}
		return nil
	}
	if err := pass(); err != nil { // warm-up: plans, tapers, caches
		return err
	}
	cpu0 := cpuSeconds()
	start := time.Now()
	passes := 0
	for time.Since(start).Seconds() < seconds || passes == 0 {
		if err := pass(); err != nil {
			return err
		}
		passes++
	}
	el := time.Since(start).Seconds()
	cpu := cpuSeconds() - cpu0
	samples := float64(passes * records * length)
	if math.IsNaN(sink) {
		return fmt.Errorf("NaN result")
	}
	if out != "" {
		var b []byte
		for _, x := range data {
			if dst, err = psd(x); err != nil {
				return err
			}
			for _, v := range dst {
				b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
			}
		}
		if err := os.WriteFile(out, b, 0o644); err != nil {
			return err
		}
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"method": method, "nperseg": nperseg, "records": records, "length": length, "passes": passes,
		"seconds": el, "samples_per_second": samples / el,
		"cpu_seconds": cpu, "samples_per_cpu_second": samples / cpu,
	})
}

// records64 reads records x length float64 values from the file at path, or
// makes random ones when path is empty.
func records64(path string, records, length int) ([][]float64, error) {
	data := make([][]float64, records)
	if path == "" {
		rng := rand.New(rand.NewPCG(1, 2))
		for i := range data {
			data[i] = make([]float64, length)
			for j := range data[i] {
				data[i][j] = rng.NormFloat64()
			}
		}
		return data, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) != records*length*8 {
		return nil, fmt.Errorf("%s holds %d bytes, not %d records x %d float64", path, len(b), records, length)
	}
	for i := range data {
		data[i] = make([]float64, length)
		for j := range data[i] {
			data[i][j] = math.Float64frombits(binary.LittleEndian.Uint64(b[(i*length+j)*8:]))
		}
	}
	return data, nil
}
