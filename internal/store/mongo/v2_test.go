package mongo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	driver "go.mongodb.org/mongo-driver/v2/mongo"

	"blog/internal/changes"
)

func TestCheckDeployment(t *testing.T) {
	for _, tc := range []struct {
		name  string
		hello bson.D
		want  error
	}{
		{"replica-set-primary", bson.D{{Key: "isWritablePrimary", Value: true}, {Key: "setName", Value: "rs0"}}, nil},
		{"replica-set-secondary", bson.D{{Key: "secondary", Value: true}, {Key: "setName", Value: "rs0"}}, nil},
		{"mongos", bson.D{{Key: "isWritablePrimary", Value: true}, {Key: "msg", Value: "isdbgrid"}}, nil},
		{"standalone", bson.D{{Key: "isWritablePrimary", Value: true}, {Key: "maxWireVersion", Value: 21}}, ErrStandalone},
		{"standalone-legacy-ismaster", bson.D{{Key: "ismaster", Value: true}}, ErrStandalone},
		{"replica-set-not-initiated", bson.D{{Key: "isWritablePrimary", Value: false}, {Key: "isreplicaset", Value: true}}, ErrNotInitiated},
		{"standalone-other-msg", bson.D{{Key: "msg", Value: "something else"}}, ErrStandalone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := bson.Marshal(tc.hello)
			if err != nil {
				t.Fatal(err)
			}
			if got := CheckDeployment(raw); !errors.Is(got, tc.want) {
				t.Errorf("CheckDeployment = %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("malformed-reply", func(t *testing.T) {
		if err := CheckDeployment([]byte{1, 2, 3}); err == nil || errors.Is(err, ErrStandalone) {
			t.Errorf("CheckDeployment(garbage) = %v, want a decode error", err)
		}
	})
}

// TestStandaloneMessage checks that the start-up error tells an operator
// what is wrong and how to fix it, not just that something failed.
func TestStandaloneMessage(t *testing.T) {
	msg := ErrStandalone.Error()
	for _, want := range []string{"MongoDB", "standalone", "change streams need a replica set", "--replSet rs0", "rs.initiate()"} {
		if !strings.Contains(msg, want) {
			t.Errorf("standalone error %q does not mention %q", msg, want)
		}
	}
}

func TestMaskURI(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"no-credentials", "mongodb://localhost:27017/test?replicaSet=rs0", "mongodb://localhost:27017/test?replicaSet=rs0"},
		{"seed-uri", "mongodb://localhost:27017,localhost:27018,localhost:27019/test?replicaSet=rs0",
			"mongodb://localhost:27017,localhost:27018,localhost:27019/test?replicaSet=rs0"},
		{"password", "mongodb://admin:s3cret@db1:27017,db2:27017/blog?replicaSet=rs0",
			"mongodb://admin:xxxxx@db1:27017,db2:27017/blog?replicaSet=rs0"},
		{"password-with-at", "mongodb://admin:p%40ss@word@db1/blog", "mongodb://admin:xxxxx@db1/blog"},
		{"user-only", "mongodb://admin@db1/blog", "mongodb://admin@db1/blog"},
		{"srv-no-path", "mongodb+srv://u:p@cluster0.example.net", "mongodb+srv://u:xxxxx@cluster0.example.net"},
		{"secret-option", "mongodb://db1/?tls=true&tlsCertificateKeyFilePassword=hunter2",
			"mongodb://db1/?tls=true&tlsCertificateKeyFilePassword=xxxxx"},
		{"not-a-uri", "s3cret", "<unparseable URI>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := MaskURI(tc.in); got != tc.want {
				t.Errorf("MaskURI(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestDatabaseOf(t *testing.T) {
	for _, tc := range []struct{ name, uri, want string }{
		{"seed-uri", "mongodb://localhost:27017,localhost:27018,localhost:27019/test?replicaSet=rs0", "test"},
		{"no-path", "mongodb://localhost:27017", DefaultDatabase},
		{"empty-path", "mongodb://localhost:27017/?replicaSet=rs0", DefaultDatabase},
		{"credentials", "mongodb://u:p@localhost/posts", "posts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DatabaseOf(tc.uri)
			if err != nil || got != tc.want {
				t.Errorf("DatabaseOf(%q) = %q, %v; want %q", tc.uri, got, err, tc.want)
			}
		})
	}
	if _, err := DatabaseOf("http://localhost"); err == nil {
		t.Errorf("DatabaseOf(http URI) succeeded")
	}
}

// TestV2ErrorMapping checks the driver errors a real server returns map to
// the seam's sentinels; the codes are the server's, so they are only ever
// produced by a real deployment.
func TestV2ErrorMapping(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"no-documents", driver.ErrNoDocuments, ErrNoDocuments},
		{"duplicate-key", driver.WriteException{WriteErrors: driver.WriteErrors{{Code: 11000, Message: "E11000 duplicate key"}}}, ErrDuplicateKey},
		{"history-lost", driver.CommandError{Code: 286, Name: "ChangeStreamHistoryLost"}, changes.ErrHistoryLost},
		{"token-not-found-pre-4.2", driver.CommandError{Code: 280, Name: "ChangeStreamFatalError"}, changes.ErrHistoryLost},
		{"capped-position-lost", driver.CommandError{Code: 136, Name: "CappedPositionLost"}, changes.ErrHistoryLost},
		{"wrapped", fmt.Errorf("getMore: %w", driver.CommandError{Code: 286}), changes.ErrHistoryLost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := v2Err(tc.err)
			if !errors.Is(got, tc.want) {
				t.Errorf("v2Err(%v) = %v, want %v", tc.err, got, tc.want)
			}
			if !errors.Is(got, tc.err) && !strings.Contains(got.Error(), tc.err.Error()) {
				t.Errorf("v2Err(%v) = %v lost the original error", tc.err, got)
			}
		})
	}
	other := driver.CommandError{Code: 13, Name: "Unauthorized"}
	if got := v2Err(other); errors.Is(got, changes.ErrHistoryLost) || errors.Is(got, ErrNoDocuments) || errors.Is(got, ErrDuplicateKey) {
		t.Errorf("v2Err(Unauthorized) = %v, mapped to a sentinel", got)
	}
	if v2Err(nil) != nil {
		t.Errorf("v2Err(nil) != nil")
	}
}

// TestOpenUnreachable checks that a server that is not there fails Open
// within the connect timeout, with a message that names MongoDB and the
// URI (password masked) and says what to check.
func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	uri := "mongodb://blog:s3cret@127.0.0.1:1/test?replicaSet=rs0"
	start := time.Now()
	_, err := Open(context.Background(), uri, Options{ConnectTimeout: 300 * time.Millisecond})
	if err == nil {
		t.Fatal("Open of a closed port succeeded")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Open took %s to fail; the connect timeout was 300ms", d)
	}
	msg := err.Error()
	for _, want := range []string{"MongoDB", "mongodb://blog:xxxxx@127.0.0.1:1/test", "running"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	if strings.Contains(msg, "s3cret") {
		t.Errorf("error %q leaks the password", msg)
	}
}

func TestOpenInvalidURI(t *testing.T) {
	_, err := Open(context.Background(), "localhost:27017", Options{ConnectTimeout: 100 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "invalid MongoDB URI") {
		t.Errorf("Open(no scheme) = %v, want an invalid-URI error", err)
	}
}
