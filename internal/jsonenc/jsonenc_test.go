package jsonenc

import (
	"encoding/json"
	"testing"
	"time"
)

func TestAppendTime(t *testing.T) {
	cases := []struct {
		name string
		in   time.Time
		want string
	}{
		{"whole-second-keeps-000", time.Date(2024, 11, 5, 14, 3, 49, 0, time.UTC), `"2024-11-05T14:03:49.000Z"`},
		{"trailing-zero-kept", time.Date(2024, 11, 5, 14, 3, 7, 120e6, time.UTC), `"2024-11-05T14:03:07.120Z"`},
		{"sub-millisecond-truncated", time.Date(2024, 11, 5, 14, 3, 7, 999_999_999, time.UTC), `"2024-11-05T14:03:07.999Z"`},
		{"other-zone-converted-to-utc", time.Date(2024, 11, 5, 15, 3, 7, 5e6, time.FixedZone("CET", 3600)), `"2024-11-05T14:03:07.005Z"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := string(AppendTime(nil, c.in)); got != c.want {
				t.Fatalf("AppendTime = %s, want %s", got, c.want)
			}
			b, err := json.Marshal(struct{ T *Time }{(*Time)(&c.in)})
			if err != nil {
				t.Fatal(err)
			}
			if want := `{"T":` + c.want + `}`; string(b) != want {
				t.Fatalf("json.Marshal(Time) = %s, want %s", b, want)
			}
		})
	}
}

// FuzzAppendString holds AppendString to encoding/json's output for any
// string, valid UTF-8 or not.
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", `quote " and \ backslash`, "<script>&amp;</script>", "tab\tnl\ncr\r\x00\x1f\x7f", "\u2028\u2029", "é ü 世界 🙂", "\xff\xfe bad", "a\xc3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Fatalf("AppendString(%q) = %s, want %s", s, got, want)
		}
	})
}
