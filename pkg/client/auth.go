package client

import (
	"context"

	"google.golang.org/grpc/credentials"
)

// WithToken sends the bearer token with every call, as the header
// "authorization: Bearer <token>", for a server with authentication on.
func WithToken(token string) Option { return func(o *options) { o.token = token } }

// bearer is a token as per-call credentials.
type bearer string

var _ credentials.PerRPCCredentials = bearer("")

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity is false so that a token also goes over a
// plaintext connection (a server on localhost, or behind a TLS proxy).
func (bearer) RequireTransportSecurity() bool { return false }
