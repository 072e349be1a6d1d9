package mongowire_test

import (
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"blog/internal/mongowire"
)

// opQuery sends one legacy OP_QUERY to addr and returns the document of
// the OP_REPLY.
func opQuery(t *testing.T, addr, ns string, cmd bson.D) bson.Raw {
	t.Helper()
	doc, err := bson.Marshal(cmd)
	if err != nil {
		t.Fatal(err)
	}
	var msg []byte
	msg = binary.LittleEndian.AppendUint32(msg, 0) // length, set below
	msg = binary.LittleEndian.AppendUint32(msg, 7) // requestID
	msg = binary.LittleEndian.AppendUint32(msg, 0)
	msg = binary.LittleEndian.AppendUint32(msg, 2004) // OP_QUERY
	msg = binary.LittleEndian.AppendUint32(msg, 0)    // flags
	msg = append(append(msg, ns...), 0)
	msg = binary.LittleEndian.AppendUint32(msg, 0)
	msg = binary.LittleEndian.AppendUint32(msg, 1)
	msg = append(msg, doc...)
	binary.LittleEndian.PutUint32(msg, uint32(len(msg)))
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, 16)
	if _, err := io.ReadFull(c, hdr); err != nil {
		t.Fatal(err)
	}
	if op := binary.LittleEndian.Uint32(hdr[12:]); op != 1 {
		t.Fatalf("reply opcode %d, want OP_REPLY (1)", op)
	}
	if to := binary.LittleEndian.Uint32(hdr[8:]); to != 7 {
		t.Fatalf("reply responseTo %d, want 7", to)
	}
	body := make([]byte, binary.LittleEndian.Uint32(hdr)-16)
	if _, err := io.ReadFull(c, body); err != nil {
		t.Fatal(err)
	}
	return bson.Raw(body[20:]) // flags, cursorID, startingFrom, numberReturned
}

func TestLegacyHello(t *testing.T) {
	t.Parallel()
	s := mongowire.StartServer(t, mongowire.Options{})
	for _, tc := range []struct {
		name, ns string
		cmd      bson.D
		ok       bool
	}{
		{"ismaster-answered", "admin.$cmd", bson.D{{Key: "isMaster", Value: 1}}, true},
		{"query-refused", "db.c", bson.D{{Key: "x", Value: 1}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reply := opQuery(t, s.Addr(), tc.ns, tc.cmd)
			ok, _ := reply.Lookup("ok").AsFloat64OK()
			if (ok == 1) != tc.ok {
				t.Fatalf("reply %v, want ok=%v", reply, tc.ok)
			}
			if tc.ok && reply.Lookup("setName").StringValue() != "rs0" {
				t.Fatalf("legacy hello %v does not name the replica set", reply)
			}
		})
	}
}
