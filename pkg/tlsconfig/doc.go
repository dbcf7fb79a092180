// Package tlsconfig builds the TLS configurations of brokers and clients
// from PEM files, and reloads those files when they change, without a
// restart: a handshake looks at the files' modification times (at most once
// a second) and loads them again if they moved. A new certificate that does
// not load (half-written, key does not match) is logged by the caller's
// OnError and the previous one is kept.
//
// One Files value serves every listener that uses the same files; Server
// and Client return configurations for either end of a connection.
//
//	files := tlsconfig.Files{Cert: "broker.crt", Key: "broker.key", CA: "ca.crt"}
//	srv, err := files.Server(tlsconfig.RequireClientCert)
//	cli, err := files.Client("strata1")
package tlsconfig
