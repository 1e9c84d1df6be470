package client

import (
	"crypto/tls"
	"fmt"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// WithTLS connects over TLS with cfg: its RootCAs check the server's
// certificate (nil: the system's CAs) and its Certificates are the client
// certificate a server with mutual TLS asks for. A "grpc+tls://" address
// turns TLS on by itself; WithTLS is needed for a private CA or a client
// certificate.
func WithTLS(cfg *tls.Config) Option { return func(o *options) { o.tls = cfg } }

// transport chooses the credentials of addr and returns it without its scheme.
func transport(addr string, cfg *tls.Config) (credentials.TransportCredentials, string, error) {
	scheme, rest, ok := strings.Cut(addr, "://")
	if !ok {
		scheme, rest = "", addr
	}
	switch scheme {
	case "grpc+tls":
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		return credentials.NewTLS(cfg), rest, nil
	case "", "grpc", "grpc+tcp":
		if cfg != nil {
			if scheme != "" {
				return nil, "", fmt.Errorf("client: %s is a plaintext address but TLS is configured; use grpc+tls://%s", addr, rest)
			}
			return credentials.NewTLS(cfg), rest, nil
		}
		return insecure.NewCredentials(), rest, nil
	}
	return nil, "", fmt.Errorf("client: address %q: use host:port, grpc://host:port or grpc+tls://host:port", addr)
}
