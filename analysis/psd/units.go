package psd

import (
	"encoding/json"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/flightbatch/flightbatch/batch"
)

// ResultUnits implements batch.UnitFunction: freqs in Hz; when the signal has a unit
// u (see batch.SignalUnit), psd in u²/Hz (u² for scaling "spectrum"), band power in
// u² (u²·Hz for "spectrum"); relative band power is a ratio, "1".
func (Function) ResultUnits(raw json.RawMessage, in *arrow.Schema) map[string]string {
	p, err := DecodeParams(raw)
	if err != nil {
		return nil
	}
	units := map[string]string{"freqs": "Hz"}
	if p.Relative {
		for _, b := range p.Bands {
			units[b.Name+"_relative"] = "1"
		}
	}
	u := batch.SignalUnit(in, p.Column)
	if u == "" {
		return units
	}
	if strings.ContainsAny(u, "/*· ") {
		u = "(" + u + ")"
	}
	sq := u + "²"
	spectrum := p.Scaling == "spectrum"
	if spectrum {
		units["psd"] = sq
	} else {
		units["psd"] = sq + "/Hz"
	}
	for _, b := range p.Bands {
		if spectrum {
			units[b.Name+"_power"] = sq + "·Hz"
		} else {
			units[b.Name+"_power"] = sq
		}
	}
	return units
}
