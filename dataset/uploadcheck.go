package dataset

import (
	"fmt"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/flightbatch/flightbatch/internal/clip"
)

// SignalLayouts describes the signal columns the kernels read, for messages.
const SignalLayouts = "a signal column is a list, large_list or fixed_size_list of float32 or float64 " +
	"(one row per channel × epoch, e.g. list<float64>: pa.list_(pa.float64()))"

// tensorExtensions are Arrow's canonical tensor extension types.
var tensorExtensions = map[string]bool{
	"arrow.fixed_shape_tensor":    true,
	"arrow.variable_shape_tensor": true,
}

// CheckUpload checks, before anything is stored, that a table uploaded as a
// dataset holds signals the kernels read as meant, and returns its signal
// columns. It refuses, with an error wrapping ErrInvalid that names the
// column, its type and the accepted layouts:
//
//   - a tensor column (arrow.fixed_shape_tensor or variable_shape_tensor): its
//     storage is one flat list per row, which a kernel would read as a single
//     signal with the channels laid end to end;
//   - a list of lists (channels nested in a row), for the same reason;
//   - a list of numbers the kernels do not read (integers, float16, decimals);
//   - a table with no signal column at all, such as one column per channel
//     and one row per sample.
//
// Lists of other types (strings, booleans, structs) are metadata and pass.
func CheckUpload(schema *arrow.Schema) ([]string, error) {
	var signals []string
	for _, f := range schema.Fields() {
		name := clip.Quote(f.Name)
		if ext := extensionName(f); tensorExtensions[ext] {
			return nil, fmt.Errorf("column %s is an %s (%s): a kernel would read all its channels end to end as one signal. "+
				"Lay it out one row per channel: a list<float64> column \"samples\" and a \"channel\" column "+
				"(flightbatch upload and the Python client's upload do this); %s: %w", name, ext, f.Type, SignalLayouts, ErrInvalid)
		}
		elem, ok := listElem(f.Type)
		if !ok {
			continue
		}
		if inner, nested := listElem(elem); nested {
			if isNumeric(inner) {
				return nil, fmt.Errorf("column %s is %s, channels nested in one row: a kernel reads one signal per row. "+
					"Lay it out one row per channel: a list<float64> column \"samples\" and a \"channel\" column; %s: %w", name, f.Type, SignalLayouts, ErrInvalid)
			}
			continue
		}
		switch elem.ID() {
		case arrow.FLOAT32, arrow.FLOAT64:
			signals = append(signals, f.Name)
		default:
			if isNumeric(elem) {
				return nil, fmt.Errorf("column %s is %s, a signal type the kernels do not read; cast it to list<float64> "+
					"(pa.compute.cast(col, pa.list_(pa.float64())) or scale it to physical units first); %s: %w", name, f.Type, SignalLayouts, ErrInvalid)
			}
		}
	}
	if len(signals) == 0 {
		cols := make([]string, 0, schema.NumFields())
		for i, f := range schema.Fields() {
			if i == 8 {
				cols = append(cols, fmt.Sprintf("and %d more", schema.NumFields()-8))
				break
			}
			cols = append(cols, fmt.Sprintf("%s %s", clip.Quote(f.Name), f.Type))
		}
		return nil, fmt.Errorf("the table has no signal column (its columns: %s); %s. A table with one column per channel "+
			"and one row per sample must be reshaped: flightbatch upload FILE.csv --fs HZ does it: %w", strings.Join(cols, ", "), SignalLayouts, ErrInvalid)
	}
	return signals, nil
}

// extensionName is a field's Arrow extension type name, whether the reader
// knew the extension type or left it as its storage type with metadata.
func extensionName(f arrow.Field) string {
	if ext, ok := f.Type.(arrow.ExtensionType); ok {
		return ext.ExtensionName()
	}
	if i := f.Metadata.FindKey("ARROW:extension:name"); i >= 0 {
		return f.Metadata.Values()[i]
	}
	return ""
}

// listElem is the element type of a list-like type.
func listElem(t arrow.DataType) (arrow.DataType, bool) {
	if ext, ok := t.(arrow.ExtensionType); ok {
		t = ext.StorageType()
	}
	switch lt := t.(type) {
	case *arrow.ListType:
		return lt.Elem(), true
	case *arrow.LargeListType:
		return lt.Elem(), true
	case *arrow.FixedSizeListType:
		return lt.Elem(), true
	case *arrow.ListViewType:
		return lt.Elem(), true
	case *arrow.LargeListViewType:
		return lt.Elem(), true
	}
	return nil, false
}

func isNumeric(t arrow.DataType) bool {
	switch t.ID() {
	case arrow.INT8, arrow.INT16, arrow.INT32, arrow.INT64, arrow.UINT8, arrow.UINT16, arrow.UINT32, arrow.UINT64,
		arrow.FLOAT16, arrow.FLOAT32, arrow.FLOAT64, arrow.DECIMAL32, arrow.DECIMAL64, arrow.DECIMAL128, arrow.DECIMAL256:
		return true
	}
	return false
}
