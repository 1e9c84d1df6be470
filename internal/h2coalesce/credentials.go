package h2coalesce

import (
	"context"
	"net"

	"google.golang.org/grpc/credentials"
)

// Credentials returns gRPC server transport credentials that wrap each
// connection in a Conn once inner's handshake is done, keeping the AuthInfo
// inner returns; a nil inner is plaintext, as a server without credentials
// (no handshake, no AuthInfo). Everything else is inner's.
//
// inner's connection must hand Conn the bytes gRPC writes, in the Writes
// gRPC makes. A TLS connection does, but each segment of a merged Write
// becomes a TLS record of its own (crypto/tls has no writev), and a client's
// cost over TLS is mostly decrypting 16 KiB records: flightbatch measured no
// gain there and merges plaintext only.
func Credentials(inner credentials.TransportCredentials) credentials.TransportCredentials {
	return creds{inner: inner}
}

type creds struct {
	inner credentials.TransportCredentials
	// seen, when set, is told of every connection wrapped (for tests).
	seen func(*Conn)
}

// ServerHandshake runs inner's handshake, then wraps the connection.
func (c creds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info := raw, credentials.AuthInfo(nil)
	if c.inner != nil {
		var err error
		if conn, info, err = c.inner.ServerHandshake(raw); err != nil {
			return conn, info, err
		}
	}
	w := NewConn(conn)
	if c.seen != nil {
		c.seen(w)
	}
	return w, info, nil
}

// ClientHandshake is inner's; a nil inner leaves the connection as it is.
func (c creds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	if c.inner == nil {
		return raw, nil, nil
	}
	return c.inner.ClientHandshake(ctx, authority, raw)
}

// Info is inner's; plaintext says "insecure", as gRPC's insecure
// credentials do.
func (c creds) Info() credentials.ProtocolInfo {
	if c.inner == nil {
		return credentials.ProtocolInfo{SecurityProtocol: "insecure"}
	}
	return c.inner.Info()
}

// Clone clones inner.
func (c creds) Clone() credentials.TransportCredentials {
	if c.inner == nil {
		return c
	}
	return creds{inner: c.inner.Clone(), seen: c.seen}
}

// OverrideServerName is inner's.
//
// Deprecated: as credentials.TransportCredentials's.
func (c creds) OverrideServerName(name string) error {
	if c.inner == nil {
		return nil
	}
	return c.inner.OverrideServerName(name) //nolint:staticcheck // delegated as it is
}
