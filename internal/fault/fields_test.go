package fault_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"blog/internal/fault"
)

// TestCheckTextDirectionAndInvisible: text refuses direction overrides;
// a title also refuses invisible characters, but not the joiners scripts
// and emoji need.
func TestCheckTextDirectionAndInvisible(t *testing.T) {
	tests := []struct {
		name, s string
		title   bool
		bad     bool
	}{
		{"text-rlo-400", "price \u202E0001$", false, true},
		{"text-isolate-400", "a \u2067b", false, true},
		{"text-rtl-script-ok", "שלום עולם", false, false},
		{"text-rlm-ok", "abc\u200F def", false, false},
		{"title-zero-width-space-400", "pay\u200Bpal", true, true},
		{"title-bom-400", "\uFEFFtitle", true, true},
		{"title-lro-400", "\u202Dtitle", true, true},
		{"title-emoji-zwj-ok", "family \U0001F468\u200D\U0001F469\u200D\U0001F467", true, false},
		{"title-persian-zwnj-ok", "می\u200Cخواهم", true, false},
		{"text-zero-width-space-ok", "long\u200Bword", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems := fault.Fields{}
			if tt.title {
				problems.CheckTitle("#/title", tt.s, 300)
			} else {
				problems.CheckText("#/text", tt.s, 0, 1000)
			}
			if got := len(problems) > 0; got != tt.bad {
				t.Fatalf("refused=%v (%v), want %v", got, problems, tt.bad)
			}
		})
	}
}

// TestFieldsIsAnInvalidError: a Fields error is of kind Invalid through any
// wrapping, lists its fields in order, and is nil when empty.
func TestFieldsIsAnInvalidError(t *testing.T) {
	if err := (fault.Fields{}).Err(); err != nil {
		t.Fatalf("empty Fields: %v, want nil", err)
	}
	f := fault.Fields{}
	f.CheckID("#/postId", "nope")
	f.CheckText("#/text", "  ", 10, 0)
	err := fmt.Errorf("create: %w", f.Err())
	if k := fault.KindOf(err); k != fault.Invalid {
		t.Errorf("kind %v, want Invalid", k)
	}
	var got fault.Fields
	if !errors.As(err, &got) {
		t.Fatalf("%v is not a Fields", err)
	}
	want := fault.Fields{"#/postId": "must be a 24-character hexadecimal ObjectID", "#/text": "is required and must not be blank"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
	if msg := got.Error(); msg != "invalid request: #/postId must be a 24-character hexadecimal ObjectID; #/text is required and must not be blank" {
		t.Errorf("Error() = %q", msg)
	}
}
