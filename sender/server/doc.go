// Package server is the receiving side of skynet's cluster protocol: a
// Server that answers skynet nodes and skycall Clients (package sender) as
// a skynet node would, byte for byte.
//
//	s := server.New("db")
//	s.HandleFunc("@store", func(ctx context.Context, req *server.Request) ([]byte, error) {
//		return req.Payload, nil // a call's reply; a push's is dropped
//	})
//	err := s.Serve(listener)
//
// With tlsfiles.Load and WithMutualTLS it speaks mutual TLS to skycall
// Clients (sender.WithMutualTLS); skynet nodes speak plain TCP.
//
// A Server bounds what its peers can make it hold: connections in all and
// per peer IP (WithMaxConns, WithMaxConnsPerPeer), bytes of requests
// being reassembled (WithPartialBudget; a request over it is answered
// "busy") and bytes of requests waiting for handlers (WithQueuedBudget;
// past it readers stop reading). Reassembly buffers grow with the bytes
// received, never from the size a header claims.
package server
