//go:build !linux

package h2coalesce

import "net"

// rawWriter is Linux's; elsewhere a Conn writes through net.Conn.
type rawWriter struct{}

func newRawWriter(net.Conn) *rawWriter { return nil }

func (*rawWriter) writeBuffers([][]byte) (int64, error) {
	panic("h2coalesce: no raw writes on this system")
}
