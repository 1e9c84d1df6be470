package edf

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Decode converts the samples of signal sig in n consecutive data records
// (recs holds them, n × RecordBytes bytes) to physical units, appending them
// to dst: little-endian two's-complement integers of 2 bytes (EDF) or 3 bytes
// (BDF), scaled by the signal's header.
func (h *Header) Decode(dst []float64, recs []byte, sig int) []float64 {
	s := &h.Signals[sig]
	gain := s.Gain()
	dmin := float64(s.DigMin)
	n := len(recs) / h.RecordBytes
	for r := 0; r < n; r++ {
		b := recs[r*h.RecordBytes+s.Offset : r*h.RecordBytes+s.Offset+s.SamplesPerRecord*h.SampleBytes]
		if h.SampleBytes == 2 {
			for j := 0; j+1 < len(b); j += 2 {
				d := int16(uint16(b[j]) | uint16(b[j+1])<<8)
				dst = append(dst, s.PhysMin+(float64(d)-dmin)*gain)
			}
			continue
		}
		for j := 0; j+2 < len(b); j += 3 {
			d := int32(uint32(b[j])<<8|uint32(b[j+1])<<16|uint32(b[j+2])<<24) >> 8
			dst = append(dst, s.PhysMin+(float64(d)-dmin)*gain)
		}
	}
	return dst
}

// Annotation is one annotation of an EDF+/BDF+ file.
type Annotation struct {
	// Onset is in seconds from the header's start time.
	Onset float64 `json:"onset"`
	// Duration is in seconds; 0 when the TAL gives none.
	Duration float64 `json:"duration"`
	Text     string  `json:"text"`
}

// RecordAnnotations parses the annotations signal sig of one data record
// (rec holds the whole record). It returns the record's time-keeping onset
// (the first TAL's, in seconds from the header's start) and its
// annotations. A record without a time-keeping TAL is an error in EDF+.
func (h *Header) RecordAnnotations(rec []byte, sig int) (onset float64, anns []Annotation, err error) {
	s := &h.Signals[sig]
	b := rec[s.Offset : s.Offset+s.SamplesPerRecord*h.SampleBytes]
	first := true
	for len(b) > 0 {
		end := bytes.IndexByte(b, 0)
		var tal []byte
		if end < 0 {
			tal, b = b, nil
		} else {
			tal, b = b[:end], b[end+1:]
		}
		if len(tal) == 0 {
			if first {
				return 0, nil, fmt.Errorf("a data record's annotations start with no time-keeping annotation: %w", ErrInvalid)
			}
			// Padding: the rest of the signal is zeros.
			continue
		}
		parts := strings.Split(string(tal), "\x14")
		if len(parts) < 2 {
			return 0, nil, fmt.Errorf("annotation %q has no \\x14 after its onset: %w", printable(tal), ErrInvalid)
		}
		on, dur, err := parseOnset(parts[0])
		if err != nil {
			return 0, nil, err
		}
		texts := parts[1:]
		if len(texts) > 0 && texts[len(texts)-1] == "" {
			texts = texts[:len(texts)-1]
		}
		if first {
			onset = on
			first = false
			if len(texts) > 0 && texts[0] == "" {
				texts = texts[1:]
			}
		}
		for _, t := range texts {
			if !utf8.ValidString(t) {
				t = strings.ToValidUTF8(t, "\uFFFD")
			}
			anns = append(anns, Annotation{Onset: on, Duration: dur, Text: t})
		}
	}
	if first {
		return 0, nil, fmt.Errorf("a data record's annotations signal is empty; EDF+ needs a time-keeping annotation in each record: %w", ErrInvalid)
	}
	return onset, anns, nil
}

// parseOnset reads "+12.5" or "+12.5\x1530" (onset and duration).
func parseOnset(s string) (onset, duration float64, err error) {
	on, dur, hasDur := strings.Cut(s, "\x15")
	if len(on) < 2 || (on[0] != '+' && on[0] != '-') {
		return 0, 0, fmt.Errorf("annotation onset %q does not start with + or -: %w", printable([]byte(s)), ErrInvalid)
	}
	onset, err = strconv.ParseFloat(on, 64)
	if err != nil || math.IsInf(onset, 0) || math.IsNaN(onset) {
		return 0, 0, fmt.Errorf("annotation onset %q is not a number: %w", printable([]byte(on)), ErrInvalid)
	}
	if hasDur {
		duration, err = strconv.ParseFloat(dur, 64)
		if err != nil || duration < 0 || math.IsInf(duration, 0) || math.IsNaN(duration) {
			return 0, 0, fmt.Errorf("annotation duration %q is not a non-negative number: %w", printable([]byte(dur)), ErrInvalid)
		}
	}
	return onset, duration, nil
}
