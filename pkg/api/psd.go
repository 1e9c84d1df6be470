package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/flightbatch/flightbatch/internal/clip"
)

// PSDRequest is the body of the psd action: the input, the psd parameters,
// and the job's own fields (reuse, name, labels).
type PSDRequest struct {
	// Dataset is a dataset name, or "jobs/<job_id>" for a finished job's result.
	Dataset string `json:"dataset"`
	PSDParams
	// Reuse returns an earlier succeeded job with the same input and
	// parameters instead of running again.
	Reuse bool `json:"reuse,omitempty"`
	// Name and Labels tag the job (they are not psd parameters).
	Name   string            `json:"name,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
	// Extra holds further fields, sent as given; they override the fields above.
	Extra map[string]json.RawMessage `json:"-"`
}

// PSDParams are the psd function's parameters, the one statement of their
// JSON names and types: the signal column, the sampling rate (fixed or per
// record), scipy.signal.welch's parameters with scipy's names and defaults,
// bands, cropping, bad spans, and MNE's multitaper parameters. A nil pointer
// or an empty value means the default; the server decodes them strictly (an
// unknown name is an error) and records them with its defaults filled in.
type PSDParams struct {
	// Column is the signal column (default "samples").
	Column string `json:"column,omitempty"`
	// FS is a fixed sampling rate in Hz; set it or FSColumn.
	FS *float64 `json:"fs,omitempty"`
	// FSColumn names a numeric column holding each record's sampling rate.
	FSColumn string `json:"fs_column,omitempty"`
	// Window is scipy's window: a name ("hann", the default), a tuple
	// (["tukey", 0.25]) or weights ([0.1, 0.5, ...]).
	Window any `json:"window,omitempty"`
	// NPerSeg is the segment length (default 256, or the number of weights;
	// clipped to a shorter record, as scipy does).
	NPerSeg *int `json:"nperseg,omitempty"`
	// NOverlap is the overlap of segments (default nperseg/2).
	NOverlap *int `json:"noverlap,omitempty"`
	// NFFT is the FFT length (default nperseg).
	NFFT *int `json:"nfft,omitempty"`
	// Detrend is "constant" (default), "linear" or false.
	Detrend any `json:"detrend,omitempty"`
	// ReturnOnesided asks for a one-sided spectrum (default true).
	ReturnOnesided *bool `json:"return_onesided,omitempty"`
	// Scaling is "density" (default) or "spectrum".
	Scaling string `json:"scaling,omitempty"`
	// Average is "mean" (default), "median", or "none" (JSON null too): one
	// row per segment.
	Average string `json:"average,omitempty"`
	// Bands asks for band powers, one <name>_power column each, in this order.
	Bands Bands `json:"bands,omitempty"`
	// Relative adds a <name>_relative column per band: its power over the
	// total power in [FMin, FMax]; every band must lie in that range.
	Relative bool `json:"relative,omitempty"`
	// FMin and FMax, when given, crop freqs and psd to [FMin, FMax]; they
	// also bound the total of relative band power (default 1 and 45 Hz).
	FMin *float64 `json:"fmin,omitempty"`
	FMax *float64 `json:"fmax,omitempty"`
	// NaNPolicy is "propagate" (default: NaN samples make the affected values
	// NaN, as scipy does) or "omit": NaN samples are bad spans skipped as
	// MNE's psd_array_welch skips them.
	NaNPolicy string `json:"nan_policy,omitempty"`
	// Method is "welch" (default) or "multitaper": MNE's
	// psd_array_multitaper over the whole record, with the parameters below.
	Method string `json:"method,omitempty"`
	// Bandwidth is multitaper's full frequency bandwidth in Hz (default: a
	// half-bandwidth NW of 4, as MNE's bandwidth=None).
	Bandwidth *float64 `json:"bandwidth,omitempty"`
	// LowBias keeps only the tapers with concentration above 0.9 (default
	// true).
	LowBias *bool `json:"low_bias,omitempty"`
	// Normalization is "length" (default) or "full" (the PSD divided by fs).
	Normalization string `json:"normalization,omitempty"`
	// Adaptive combines the tapered spectra with MNE's adaptive weights
	// (default false).
	Adaptive bool `json:"adaptive,omitempty"`
	// MaxIter bounds the iterations of adaptive weighting (default 150).
	MaxIter *int `json:"max_iter,omitempty"`
	// SharedFreqs leaves the freqs column out of the result: every row's
	// frequencies are the same (a fixed fs, Welch), kept once in the result
	// schema's metadata ("flightbatch.freqs", a JSON array in Hz).
	SharedFreqs bool `json:"shared_freqs,omitempty"`
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
			return fmt.Errorf("band %s must be [low, high] in Hz", clip.Quote(name))
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
