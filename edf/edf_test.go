package edf

import (
	"errors"
	"fmt"
	"github.com/flightbatch/flightbatch/edf/edftest"
	"math"
	"strings"
	"testing"
	"time"
)

func sine(n int) func(rec, j int) int64 {
	return func(rec, j int) int64 {
		return int64(math.Round(30000 * math.Sin(float64(rec*n+j)/7)))
	}
}

func twoSignals(bdf bool) edftest.File {
	dmin, dmax := int64(-32768), int64(32767)
	if bdf {
		dmin, dmax = -8388608, 8388607
	}
	return edftest.File{
		BDF: bdf, Records: 3,
		Signals: []edftest.Signal{
			{Label: "Fz", N: 8, PMin: -500, PMax: 500, DMin: dmin, DMax: dmax, Digital: sine(8)},
			{Label: "EMG", N: 4, PMin: -1000, PMax: 1000, DMin: dmin, DMax: dmax, Digital: func(rec, j int) int64 { return int64(-rec*4 - j) }},
		},
	}
}

func parse(t *testing.T, data []byte) (*Header, error) {
	t.Helper()
	return ParseHeader(data, int64(len(data)))
}

func TestDecodeScalesDigitalToPhysical(t *testing.T) {
	for _, bdf := range []bool{false, true} {
		t.Run(fmt.Sprintf("bdf=%v", bdf), func(t *testing.T) {
			f := twoSignals(bdf)
			data := f.Build()
			h, err := parse(t, data)
			if err != nil {
				t.Fatal(err)
			}
			wantKind := KindEDF
			if bdf {
				wantKind = KindBDF
			}
			if h.Kind != wantKind || h.Records != 3 || h.Fs(0) != 8 || h.Fs(1) != 4 {
				t.Fatalf("header: kind %s records %d fs %v %v", h.Kind, h.Records, h.Fs(0), h.Fs(1))
			}
			if want := time.Date(2024, 3, 1, 10, 20, 30, 0, time.UTC); !h.Start.Equal(want) {
				t.Errorf("start %v, want %v", h.Start, want)
			}
			recs := data[h.HeaderBytes:]
			for sig, s := range f.Signals {
				got := h.Decode(nil, recs, sig)
				if len(got) != 3*s.N {
					t.Fatalf("signal %d: %d samples, want %d", sig, len(got), 3*s.N)
				}
				for i, v := range got {
					d := float64(s.Digital(i/s.N, i%s.N))
					want := s.PMin + (d-float64(s.DMin))*(s.PMax-s.PMin)/float64(s.DMax-s.DMin)
					if math.Abs(v-want) > 1e-12*math.Abs(want)+1e-12 {
						t.Fatalf("signal %d sample %d: %v, want %v", sig, i, v, want)
					}
				}
			}
		})
	}
}

func TestAnnotations(t *testing.T) {
	f := twoSignals(false)
	f.Reserved = "EDF+D"
	f.Signals = append(f.Signals, edftest.Signal{Label: "EDF Annotations", N: 30, Annotation: true, DMin: -32768, DMax: 32767, PMin: -1, PMax: 1,
		AnnotationRecord: func(rec int) string {
			onset := []string{"+0.25", "+1.25", "+10.25"}[rec]
			s := onset + "\x14\x14\x00"
			if rec == 1 {
				s += "+1.5\x152.5\x14BAD_motion\x14stim\x14\x00"
			}
			return s
		}})
	data := f.Build()
	h, err := parse(t, data)
	if err != nil {
		t.Fatal(err)
	}
	if h.Kind != KindEDFPlusD || len(h.DataSignals()) != 2 || len(h.Annotations()) != 1 {
		t.Fatalf("kind %s, data %v, annotations %v", h.Kind, h.DataSignals(), h.Annotations())
	}
	var onsets []float64
	var all []Annotation
	for r := int64(0); r < h.Records; r++ {
		rec := data[h.RecordOffset(r) : h.RecordOffset(r)+int64(h.RecordBytes)]
		on, anns, err := h.RecordAnnotations(rec, 2)
		if err != nil {
			t.Fatalf("record %d: %v", r, err)
		}
		onsets = append(onsets, on)
		all = append(all, anns...)
	}
	if fmt.Sprint(onsets) != "[0.25 1.25 10.25]" {
		t.Errorf("record onsets %v", onsets)
	}
	want := []Annotation{{1.5, 2.5, "BAD_motion"}, {1.5, 2.5, "stim"}}
	if fmt.Sprint(all) != fmt.Sprint(want) {
		t.Errorf("annotations %v, want %v", all, want)
	}
}

func TestMalformedHeaders(t *testing.T) {
	good := twoSignals(false)
	cases := []struct {
		name string
		data func() []byte
		want string
	}{
		{"truncated header", func() []byte { return good.Build()[:300] }, "truncated"},
		{"truncated data", func() []byte { d := good.Build(); return d[:len(d)-5] }, "truncated file or wrong record count"},
		{"too many records", func() []byte { f := good; f.RecordsField = "4"; return f.Build() }, "wrong record count"},
		{"too few records", func() []byte { f := good; f.RecordsField = "2"; return f.Build() }, "wrong record count"},
		{"zero-duration records", func() []byte { f := good; f.Duration = "0"; return f.Build() }, "positive duration"},
		{"non-ASCII label", func() []byte {
			f := twoSignals(false)
			f.Signals[0].Label = "F\xb5z"
			return f.Build()
		}, "not printable ASCII"},
		{"bad version", func() []byte { d := good.Build(); d[0] = 'X'; return d }, "version"},
		{"no signals", func() []byte { d := good.Build(); copy(d[252:256], "0   "); return d }, "number of signals"},
		{"bad digital range", func() []byte {
			f := twoSignals(false)
			f.Signals[0].DMin, f.Signals[0].DMax = 5, 5
			return f.Build()
		}, "digital maximum"},
		{"empty", func() []byte { return nil }, "truncated"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parse(t, c.data())
			if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one wrapping ErrInvalid that says %q", err, c.want)
			}
		})
	}
}

func TestUnknownRecordCountFromSize(t *testing.T) {
	f := twoSignals(true)
	f.RecordsField = "-1"
	h, err := parse(t, f.Build())
	if err != nil {
		t.Fatal(err)
	}
	if h.Records != 3 {
		t.Fatalf("records %d, want 3 from the file size", h.Records)
	}
}

// FuzzParseHeader feeds arbitrary bytes to the header parser and, when they
// parse, to the record decoder and the annotation parser: nothing may panic.
func FuzzParseHeader(f *testing.F) {
	f.Add(twoSignals(false).Build())
	f.Add(twoSignals(true).Build())
	ann := twoSignals(false)
	ann.Reserved = "EDF+C"
	ann.Signals = append(ann.Signals, edftest.Signal{Label: "EDF Annotations", N: 20, Annotation: true, DMin: -32768, DMax: 32767, PMin: -1, PMax: 1,
		AnnotationRecord: func(rec int) string { return fmt.Sprintf("+%d\x14\x14\x00+0.5\x151\x14BAD\x14\x00", rec) }})
	f.Add(ann.Build())
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := ParseHeader(data, int64(len(data)))
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if h.RecordBytes > 1<<20 {
			return
		}
		for r := int64(0); r < h.Records && r < 4; r++ {
			rec := data[h.RecordOffset(r) : h.RecordOffset(r)+int64(h.RecordBytes)]
			for _, sig := range h.DataSignals() {
				if got := h.Decode(nil, rec, sig); len(got) != h.Signals[sig].SamplesPerRecord {
					t.Fatalf("signal %d: %d samples from one record, want %d", sig, len(got), h.Signals[sig].SamplesPerRecord)
				}
			}
			for _, sig := range h.Annotations() {
				if _, _, err := h.RecordAnnotations(rec, sig); err != nil && !errors.Is(err, ErrInvalid) {
					t.Fatalf("annotations: %v does not wrap ErrInvalid", err)
				}
			}
		}
	})
}
