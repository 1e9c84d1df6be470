// Package edftest builds EDF, EDF+, BDF and BDF+ files byte by byte for tests,
// including malformed ones a writer library would refuse to write.
package edftest

import (
	"fmt"
	"strings"
)

// Signal describes one signal of a File.
type Signal struct {
	Label            string
	N                int // samples per record
	PMin, PMax       float64
	DMin, DMax       int64
	Annotation       bool
	Digital          func(rec, j int) int64 // sample j of record rec
	AnnotationRecord func(rec int) string   // the TALs of record rec
}

// File describes an EDF/BDF file to build.
type File struct {
	BDF      bool
	Reserved string
	Records  int
	// RecordsField overrides the header's record count.
	RecordsField string
	Duration     string
	Recording    string
	Signals      []Signal
}

// pad pads s with spaces to n bytes (or cuts it).
func pad(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s + strings.Repeat(" ", n-len(s))
}

// Build writes the file's bytes: EDF, or BDF when f.BDF.
func (f File) Build() []byte {
	var b strings.Builder
	if f.BDF {
		b.WriteString("\xffBIOSEMI")
	} else {
		b.WriteString(pad("0", 8))
	}
	b.WriteString(pad("X X X X", 80))
	rec := f.Recording
	if rec == "" {
		rec = "Startdate 01-MAR-2024 X X X"
	}
	b.WriteString(pad(rec, 80))
	b.WriteString("01.03.24")
	b.WriteString("10.20.30")
	ns := len(f.Signals)
	b.WriteString(pad(fmt.Sprint(256+256*ns), 8))
	b.WriteString(pad(f.Reserved, 44))
	nr := f.RecordsField
	if nr == "" {
		nr = fmt.Sprint(f.Records)
	}
	b.WriteString(pad(nr, 8))
	dur := f.Duration
	if dur == "" {
		dur = "1"
	}
	b.WriteString(pad(dur, 8))
	b.WriteString(pad(fmt.Sprint(ns), 4))
	cols := []func(s Signal) string{
		func(s Signal) string { return pad(s.Label, 16) },
		func(s Signal) string { return pad("AgAgCl", 80) },
		func(s Signal) string { return pad("uV", 8) },
		func(s Signal) string { return pad(fmt.Sprint(s.PMin), 8) },
		func(s Signal) string { return pad(fmt.Sprint(s.PMax), 8) },
		func(s Signal) string { return pad(fmt.Sprint(s.DMin), 8) },
		func(s Signal) string { return pad(fmt.Sprint(s.DMax), 8) },
		func(s Signal) string { return pad("HP:0.1Hz", 80) },
		func(s Signal) string { return pad(fmt.Sprint(s.N), 8) },
		func(s Signal) string { return pad("", 32) },
	}
	for _, c := range cols {
		for _, s := range f.Signals {
			b.WriteString(c(s))
		}
	}
	width := 2
	if f.BDF {
		width = 3
	}
	for r := 0; r < f.Records; r++ {
		for _, s := range f.Signals {
			if s.Annotation {
				tal := []byte(s.AnnotationRecord(r))
				raw := make([]byte, s.N*width)
				copy(raw, tal)
				b.Write(raw)
				continue
			}
			for j := 0; j < s.N; j++ {
				d := s.Digital(r, j)
				for k := 0; k < width; k++ {
					b.WriteByte(byte(d >> (8 * k)))
				}
			}
		}
	}
	return []byte(b.String())
}
