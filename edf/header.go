// Package edf reads EDF, EDF+, BDF and BDF+ recordings (the European Data
// Format of clinical EEG, sleep and DBS recordings, and BioSemi's 24-bit
// variant) through ranged reads: the header first, then any range of data
// records, so that a reader of one part of a large file in object storage
// fetches only that part.
//
// A file is a fixed ASCII header (256 bytes, then 256 per signal) followed by
// data records of equal size. Each record holds, signal after signal,
// SamplesPerRecord little-endian integers of 2 bytes (EDF) or 3 bytes (BDF).
// A digital value d becomes the physical value
//
//	phys = PhysMin + (d - DigMin) * (PhysMax - PhysMin) / (DigMax - DigMin)
//
// EDF+ and BDF+ add an annotations signal ("EDF Annotations" / "BDF
// Annotations") holding time-stamped annotation lists (TALs); in a
// discontinuous file (EDF+D) the first TAL of each record gives the record's
// onset. See https://www.edfplus.info/specs/.
package edf

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ErrInvalid is wrapped by every error about a file that is not a readable
// EDF or BDF file.
var ErrInvalid = errors.New("invalid EDF/BDF file")

// Limits that keep a hostile header from making the reader allocate without
// bound.
const (
	// MaxSignals bounds the signals of a file.
	MaxSignals = 4096
	// MaxRecordBytes bounds the size of one data record.
	MaxRecordBytes = 64 << 20
	// MaxAnnotationBytes bounds the annotation bytes of one data record.
	MaxAnnotationBytes = 1 << 20
)

// Kind is a file's format.
type Kind string

// The formats. The "+" variants carry an annotations signal; "D" marks a
// discontinuous recording.
const (
	KindEDF      Kind = "EDF"
	KindEDFPlusC Kind = "EDF+C"
	KindEDFPlusD Kind = "EDF+D"
	KindBDF      Kind = "BDF"
	KindBDFPlusC Kind = "BDF+C"
	KindBDFPlusD Kind = "BDF+D"
)

// Plus reports whether the format is EDF+ or BDF+.
func (k Kind) Plus() bool { return strings.Contains(string(k), "+") }

// Discontinuous reports whether records may have gaps between them.
func (k Kind) Discontinuous() bool { return strings.HasSuffix(string(k), "+D") }

// Signal is one signal's header.
type Signal struct {
	Label            string  `json:"label"`
	Transducer       string  `json:"transducer"`
	Unit             string  `json:"unit"`
	PhysMin          float64 `json:"physical_min"`
	PhysMax          float64 `json:"physical_max"`
	DigMin           int64   `json:"digital_min"`
	DigMax           int64   `json:"digital_max"`
	Prefilter        string  `json:"prefilter"`
	SamplesPerRecord int     `json:"samples_per_record"`
	Reserved         string  `json:"reserved,omitempty"`
	// Annotations marks the EDF+/BDF+ annotations signal.
	Annotations bool `json:"annotations,omitempty"`
	// Offset is where this signal's samples start inside a data record, in bytes.
	Offset int `json:"offset"`
}

// Gain is the factor of the digital → physical scaling.
func (s *Signal) Gain() float64 {
	return (s.PhysMax - s.PhysMin) / float64(s.DigMax-s.DigMin)
}

// Header is a file's parsed header.
type Header struct {
	Kind Kind `json:"kind"`
	// Patient and Recording are the raw local patient and recording
	// identification fields (80 characters each, trailing spaces removed).
	Patient   string `json:"patient"`
	Recording string `json:"recording"`
	// Start is the recording's start (the header's date and time, UTC as
	// EDF has no time zone; for EDF+ the year of the recording field's
	// Startdate when it has one).
	Start       time.Time `json:"start"`
	HeaderBytes int       `json:"header_bytes"`
	Reserved    string    `json:"reserved"`
	// Records is the number of data records (from the file's size when the
	// header says -1, as a file still being written does).
	Records int64 `json:"records"`
	// RecordSeconds is the duration of one data record.
	RecordSeconds float64  `json:"record_seconds"`
	Signals       []Signal `json:"signals"`
	// RecordBytes is the size of one data record.
	RecordBytes int `json:"record_bytes"`
	// SampleBytes is 2 (EDF) or 3 (BDF).
	SampleBytes int `json:"sample_bytes"`
}

// Fs is the sampling rate of signal i.
func (h *Header) Fs(i int) float64 {
	return float64(h.Signals[i].SamplesPerRecord) / h.RecordSeconds
}

// Annotations returns the indices of the annotations signals.
func (h *Header) Annotations() []int {
	var out []int
	for i, s := range h.Signals {
		if s.Annotations {
			out = append(out, i)
		}
	}
	return out
}

// DataSignals returns the indices of the signals that are not annotations.
func (h *Header) DataSignals() []int {
	var out []int
	for i, s := range h.Signals {
		if !s.Annotations {
			out = append(out, i)
		}
	}
	return out
}

// RecordOffset is the byte offset of data record r.
func (h *Header) RecordOffset(r int64) int64 {
	return int64(h.HeaderBytes) + r*int64(h.RecordBytes)
}

// FixedHeaderBytes is the size of the part of the header before the signal
// headers.
const FixedHeaderBytes = 256

// SignalHeaderBytes is the size of one signal's header.
const SignalHeaderBytes = 256

// SignalCount reads the number of signals from the first 256 bytes of a
// header, so that a reader knows how much more to read.
func SignalCount(fixed []byte) (int, error) {
	if len(fixed) < FixedHeaderBytes {
		return 0, fmt.Errorf("the header is %d bytes, shorter than the %d every EDF/BDF file starts with (truncated file?): %w", len(fixed), FixedHeaderBytes, ErrInvalid)
	}
	ns, err := atoi(fixed[252:256], "number of signals")
	if err != nil {
		return 0, err
	}
	if ns < 1 || ns > MaxSignals {
		return 0, fmt.Errorf("number of signals %d is not in [1, %d]: %w", ns, MaxSignals, ErrInvalid)
	}
	return ns, nil
}

// ParseHeader parses a whole header (256 + 256 × signals bytes). fileSize is
// the size of the file, to check the record count against (or to compute it
// when the header says -1); pass -1 if unknown.
func ParseHeader(b []byte, fileSize int64) (*Header, error) {
	ns, err := SignalCount(b)
	if err != nil {
		return nil, err
	}
	need := FixedHeaderBytes + ns*SignalHeaderBytes
	if len(b) < need {
		return nil, fmt.Errorf("the header of %d signals needs %d bytes, the file has %d (truncated file?): %w", ns, need, len(b), ErrInvalid)
	}
	h := &Header{}
	switch {
	case b[0] == 0xff && string(b[1:8]) == "BIOSEMI":
		h.SampleBytes = 3
	case string(b[0:8]) == "0       ":
		h.SampleBytes = 2
	default:
		return nil, fmt.Errorf("version field %q is neither EDF's \"0\" nor BDF's \"\\xffBIOSEMI\": %w", printable(b[0:8]), ErrInvalid)
	}
	for _, f := range [][2]int{{8, 256}, {256, need}} {
		if i := bytes.IndexFunc(b[f[0]:f[1]], func(r rune) bool { return r < 0x20 || r > 0x7e }); i >= 0 {
			return nil, fmt.Errorf("header byte %d (0x%02x) is not printable ASCII, as EDF requires of every header field: %w", f[0]+i, b[f[0]+i], ErrInvalid)
		}
	}
	h.Patient = field(b[8:88])
	h.Recording = field(b[88:168])
	hb, err := atoi(b[184:192], "number of bytes in header")
	if err != nil {
		return nil, err
	}
	if hb != need {
		return nil, fmt.Errorf("number of bytes in header is %d, but %d signals make it %d: %w", hb, ns, need, ErrInvalid)
	}
	h.HeaderBytes = hb
	h.Reserved = field(b[192:236])
	plus := strings.HasPrefix(h.Reserved, "EDF+") || strings.HasPrefix(h.Reserved, "BDF+")
	disc := plus && len(h.Reserved) >= 5 && h.Reserved[4] == 'D'
	switch {
	case h.SampleBytes == 2 && !plus:
		h.Kind = KindEDF
	case h.SampleBytes == 2 && disc:
		h.Kind = KindEDFPlusD
	case h.SampleBytes == 2:
		h.Kind = KindEDFPlusC
	case !plus:
		h.Kind = KindBDF
	case disc:
		h.Kind = KindBDFPlusD
	default:
		h.Kind = KindBDFPlusC
	}
	start, err := parseStart(b[168:176], b[176:184], h.Recording, h.Kind.Plus())
	if err != nil {
		return nil, err
	}
	h.Start = start
	nrec, err := atoi(b[236:244], "number of data records")
	if err != nil {
		return nil, err
	}
	h.RecordSeconds, err = atof(b[244:252], "duration of a data record")
	if err != nil {
		return nil, err
	}
	if !(h.RecordSeconds > 0) || math.IsInf(h.RecordSeconds, 0) {
		return nil, fmt.Errorf("duration of a data record is %v; a recording of signals needs a positive duration: %w", h.RecordSeconds, ErrInvalid)
	}
	h.Signals = make([]Signal, ns)
	col := func(off, width, i int) []byte {
		p := FixedHeaderBytes + off*ns + i*width
		return b[p : p+width]
	}
	offset := 0
	for i := range h.Signals {
		s := &h.Signals[i]
		s.Label = field(col(0, 16, i))
		s.Transducer = field(col(16, 80, i))
		s.Unit = field(col(96, 8, i))
		s.Prefilter = field(col(136, 80, i))
		s.Reserved = field(col(224, 32, i))
		s.Annotations = plus && (s.Label == "EDF Annotations" || s.Label == "BDF Annotations")
		what := func(name string) string { return fmt.Sprintf("signal %d (%q): %s", i+1, s.Label, name) }
		if s.PhysMin, err = atof(col(104, 8, i), what("physical minimum")); err != nil {
			return nil, err
		}
		if s.PhysMax, err = atof(col(112, 8, i), what("physical maximum")); err != nil {
			return nil, err
		}
		dmin, err := atoi(col(120, 8, i), what("digital minimum"))
		if err != nil {
			return nil, err
		}
		dmax, err := atoi(col(128, 8, i), what("digital maximum"))
		if err != nil {
			return nil, err
		}
		s.DigMin, s.DigMax = int64(dmin), int64(dmax)
		n, err := atoi(col(216, 8, i), what("number of samples in each data record"))
		if err != nil {
			return nil, err
		}
		if n < 1 || n > MaxRecordBytes/h.SampleBytes {
			return nil, fmt.Errorf("%s is %d: %w", what("number of samples in each data record"), n, ErrInvalid)
		}
		s.SamplesPerRecord = n
		if !s.Annotations {
			if s.DigMax <= s.DigMin {
				return nil, fmt.Errorf("%s: digital maximum %d is not above digital minimum %d: %w", what("scaling"), s.DigMax, s.DigMin, ErrInvalid)
			}
			lim := int64(1) << (8*h.SampleBytes - 1)
			if s.DigMin < -lim || s.DigMax > lim-1 {
				return nil, fmt.Errorf("%s: digital range [%d, %d] exceeds the %d-bit samples: %w", what("scaling"), s.DigMin, s.DigMax, 8*h.SampleBytes, ErrInvalid)
			}
			if s.PhysMax == s.PhysMin {
				return nil, fmt.Errorf("%s: physical maximum equals physical minimum (%v): %w", what("scaling"), s.PhysMax, ErrInvalid)
			}
		}
		s.Offset = offset
		offset += n * h.SampleBytes
		if offset > MaxRecordBytes {
			return nil, fmt.Errorf("a data record would be over %d bytes: %w", MaxRecordBytes, ErrInvalid)
		}
	}
	h.RecordBytes = offset
	if len(h.DataSignals()) == 0 {
		return nil, fmt.Errorf("the file has no signal other than annotations: %w", ErrInvalid)
	}
	for _, i := range h.Annotations() {
		if h.Signals[i].SamplesPerRecord*h.SampleBytes > MaxAnnotationBytes {
			return nil, fmt.Errorf("the annotations signal takes over %d bytes per record: %w", MaxAnnotationBytes, ErrInvalid)
		}
	}
	if fileSize >= 0 {
		data := fileSize - int64(hb)
		if data < 0 {
			return nil, fmt.Errorf("the file is %d bytes, shorter than its %d-byte header (truncated file?): %w", fileSize, hb, ErrInvalid)
		}
		full := data / int64(h.RecordBytes)
		switch {
		case nrec == -1:
			nrec = int(full)
		case int64(nrec) > full:
			return nil, fmt.Errorf("the header announces %d data records of %d bytes, but the file holds %d (truncated file or wrong record count): %w", nrec, h.RecordBytes, full, ErrInvalid)
		case int64(nrec) < full:
			return nil, fmt.Errorf("the header announces %d data records of %d bytes, but the file holds %d (wrong record count): %w", nrec, h.RecordBytes, full, ErrInvalid)
		}
	}
	if nrec < 0 {
		return nil, fmt.Errorf("number of data records is %d: %w", nrec, ErrInvalid)
	}
	if nrec == 0 {
		return nil, fmt.Errorf("the file holds no data record: %w", ErrInvalid)
	}
	h.Records = int64(nrec)
	return h, nil
}

// parseStart reads dd.mm.yy and hh.mm.ss; yy 85–99 is 19yy, 00–84 20yy, and
// an EDF+ recording field's "Startdate dd-MMM-yyyy" gives the full year.
func parseStart(date, clock []byte, recording string, plus bool) (time.Time, error) {
	var d, mo, y, hh, mi, ss int
	if _, err := fmt.Sscanf(strings.ReplaceAll(string(date), " ", "0"), "%2d.%2d.%2d", &d, &mo, &y); err != nil {
		return time.Time{}, fmt.Errorf("start date %q is not dd.mm.yy: %w", printable(date), ErrInvalid)
	}
	if _, err := fmt.Sscanf(strings.ReplaceAll(string(clock), " ", "0"), "%2d.%2d.%2d", &hh, &mi, &ss); err != nil {
		return time.Time{}, fmt.Errorf("start time %q is not hh.mm.ss: %w", printable(clock), ErrInvalid)
	}
	if y >= 85 {
		y += 1900
	} else {
		y += 2000
	}
	if plus {
		f := strings.Fields(recording)
		if len(f) >= 2 && f[0] == "Startdate" {
			if t, err := time.Parse("02-Jan-2006", titleMonth(f[1])); err == nil {
				y = t.Year()
			}
		}
	}
	if mo < 1 || mo > 12 || d < 1 || d > 31 || hh > 23 || mi > 59 || ss > 60 {
		return time.Time{}, fmt.Errorf("start %q %q is not a valid date and time: %w", printable(date), printable(clock), ErrInvalid)
	}
	return time.Date(y, time.Month(mo), d, hh, mi, ss, 0, time.UTC), nil
}

// titleMonth turns "02-MAR-2002" into "02-Mar-2002" for time.Parse.
func titleMonth(s string) string {
	if len(s) == 11 {
		return s[:4] + s[4:5] + strings.ToLower(s[5:7]) + s[7:]
	}
	return s
}

func field(b []byte) string { return strings.TrimRight(string(b), " ") }

func atoi(b []byte, what string) (int, error) {
	s := strings.TrimSpace(string(b))
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%s %q is not an integer: %w", what, printable(b), ErrInvalid)
	}
	return n, nil
}

func atof(b []byte, what string) (float64, error) {
	s := strings.TrimSpace(string(b))
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%s %q is not a number: %w", what, printable(b), ErrInvalid)
	}
	return v, nil
}

// printable quotes at most 16 bytes of b, safe to log.
func printable(b []byte) string {
	if len(b) > 16 {
		b = b[:16]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, string(b))
}
