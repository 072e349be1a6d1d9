package mongowire

import "go.mongodb.org/mongo-driver/bson/primitive"

// v1Timestamp is a start time for lungo, which takes the v1 driver's type.
type v1Timestamp struct{ T, I uint32 }

func (t *v1Timestamp) v1() *primitive.Timestamp {
	if t == nil {
		return nil
	}
	return &primitive.Timestamp{T: t.T, I: t.I}
}
