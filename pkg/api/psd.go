package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// PSDRequest is the body of the psd action: the input, the signal's sampling
// rate, scipy.signal.welch's parameters (same names, same defaults when left
// zero), bands, and whether an earlier identical job may be reused.
type PSDRequest struct {
	// Dataset is a dataset name, or "jobs/<job_id>" for a finished job's result.
	Dataset string `json:"dataset"`
	// Column is the signal column (server default "samples").
	Column string `json:"column,omitempty"`
	// FS is a fixed sampling rate in Hz; set it or FSColumn.
	FS float64 `json:"fs,omitempty"`
	// FSColumn names a numeric column holding each record's sampling rate.
	FSColumn string `json:"fs_column,omitempty"`
	// Window is a window name ("hann"), a tuple (["tukey", 0.25]) or weights.
	Window any `json:"window,omitempty"`
	// NPerSeg is the segment length (0: scipy's default).
	NPerSeg int `json:"nperseg,omitempty"`
	// NOverlap is the overlap of segments (nil: nperseg/2).
	NOverlap *int `json:"noverlap,omitempty"`
	// NFFT is the FFT length (0: nperseg).
	NFFT int `json:"nfft,omitempty"`
	// Detrend is "constant" (default), "linear" or false.
	Detrend any `json:"detrend,omitempty"`
	// ReturnOnesided asks for a one-sided spectrum (nil: true).
	ReturnOnesided *bool `json:"return_onesided,omitempty"`
	// Scaling is "density" (default) or "spectrum".
	Scaling string `json:"scaling,omitempty"`
	// Average is "mean" (default) or "median".
	Average string `json:"average,omitempty"`
	// Bands asks for band powers, one <name>_power column each, in this order.
	Bands Bands `json:"bands,omitempty"`
	// Relative adds a <name>_relative column per band: its power over the
	// total power in [FMin, FMax] (nil: the server's 1 and 45 Hz).
	Relative bool     `json:"relative,omitempty"`
	FMin     *float64 `json:"fmin,omitempty"`
	FMax     *float64 `json:"fmax,omitempty"`
	// Reuse returns an earlier succeeded job with the same input and
	// parameters instead of running again.
	Reuse bool `json:"reuse,omitempty"`
	// Name and Labels tag the job (they are not psd parameters).
	Name   string            `json:"name,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	// Extra holds further fields, sent as given; they override the fields above.
	Extra map[string]json.RawMessage `json:"-"`
}

// MarshalJSON encodes the request as the psd action's body, Extra included.
func (r PSDRequest) MarshalJSON() ([]byte, error) {
	type plain PSDRequest
	body, err := json.Marshal(plain(r))
	if err != nil || len(r.Extra) == 0 {
		return body, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, err
	}
	for k, v := range r.Extra {
		fields[k] = v
	}
	return json.Marshal(fields)
}

// Band is a named frequency range [Lo, Hi] in Hz.
type Band struct {
	Name   string
	Lo, Hi float64
}

// Bands is an ordered list of bands; in JSON an object {"beta": [13, 30], ...}
// whose key order is kept (the order of the result's band columns).
type Bands []Band

// UnmarshalJSON decodes {"name": [lo, hi], ...} keeping the order of the keys.
func (b *Bands) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return errors.New(`bands must be an object such as {"beta": [13, 30]}`)
	}
	*b = nil
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		name := tok.(string)
		var r []float64
		if err := dec.Decode(&r); err != nil || len(r) != 2 {
			return fmt.Errorf("band %q must be [low, high] in Hz", name)
		}
		*b = append(*b, Band{Name: name, Lo: r[0], Hi: r[1]})
	}
	_, err = dec.Token()
	return err
}

// MarshalJSON encodes the bands as an object, in order.
func (b Bands) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, band := range b {
		if i > 0 {
			buf.WriteByte(',')
		}
		name, err := json.Marshal(band.Name)
		if err != nil {
			return nil, err
		}
		buf.Write(name)
		fmt.Fprintf(&buf, ":[%s,%s]", strconv.FormatFloat(band.Lo, 'g', -1, 64), strconv.FormatFloat(band.Hi, 'g', -1, 64))
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}
