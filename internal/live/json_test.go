package live

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"blog/internal/post"
)

// notSeedForm matches a timestamp that is not toISOString's: no fraction,
// or not exactly three digits of it, or an offset instead of Z.
var notSeedForm = regexp.MustCompile(`:\d\d(\.\d{1,2}|\.\d{4,})?Z"|:\d\d(\.\d+)?[+-]\d\d:\d\d"`)

// TestEncodingsUseSeedTimestamps: a post and its comments created and
// updated at whole seconds encode .000Z in the API answer, through
// encoding/json, and in both live-update frames.
func TestEncodingsUseSeedTimestamps(t *testing.T) {
	at := time.Date(2024, 11, 5, 14, 3, 49, 0, time.UTC)
	later := at.Add(time.Second)
	p := post.Post{ID: "672a2b5ab2c87aa17bd7b49b", Title: "t <&>", Content: "c", CreatedAt: at, UpdatedAt: &later, CommentCount: 1,
		Comments: []post.Comment{{ID: "672a2b6cb2c87aa17bd70001", Text: "x", CreatedAt: at, UpdatedAt: &later}}}
	st, err := newLiveState(p)
	if err != nil {
		t.Fatal(err)
	}
	old, err := newLiveState(post.Post{ID: p.ID, Title: "t", CreatedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	viaJSON, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]string{
		"answer":         string(Encode(p).body),
		"encoding-json":  string(viaJSON),
		"snapshot-frame": string(st.frame),
		"delta-frame":    string(deltaFrame(old, st)),
	} {
		if notSeedForm.MatchString(b) {
			t.Errorf("%s: a timestamp not in toISOString form: %s", name, b)
		}
		if !strings.Contains(b, `"2024-11-05T14:03:50.000Z"`) {
			t.Errorf("%s: no updatedAt 2024-11-05T14:03:50.000Z: %s", name, b)
		}
	}
	var back post.Post
	if err := json.Unmarshal(Encode(p).body, &back); err != nil || !back.CreatedAt.Equal(at) || back.Title != p.Title {
		t.Fatalf("answer does not decode back: %v %+v", err, back)
	}
}
