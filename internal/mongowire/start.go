package mongowire

import "testing"

// Start runs a replica-set primary on a free loopback port for the length
// of the test and returns its connection string.
func Start(t testing.TB) string {
	t.Helper()
	return StartServer(t, Options{}).URI()
}

// StartServer is Start with options, returning the server itself.
func StartServer(t testing.TB, opt Options) *Server {
	t.Helper()
	s, err := Listen("127.0.0.1:0", opt)
	if err != nil {
		t.Fatalf("mongowire: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("mongowire: close: %v", err)
		}
	})
	return s
}
