package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestBenchFlags checks the command's own validation, which needs no system.
func TestBenchFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"bad-size", []string{"-sizes", "1k,lots"}, "lots"},
		{"half-a-system", []string{"-posts-url", "http://127.0.0.1:1"}, "both"},
		{"stray-argument", []string{"extra"}, "unexpected"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := benchCmd(context.Background(), tc.args, func(string) string { return "" }, &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

// TestBenchHelpNamesValues: in `blog bench -h` each flag's placeholder names
// the value it takes (flag takes the first back-quoted word of the usage).
func TestBenchHelpNamesValues(t *testing.T) {
	var out, errOut bytes.Buffer
	_ = benchCmd(context.Background(), []string{"-h"}, func(string) string { return "" }, &out, &errOut)
	help := out.String() + errOut.String()
	if !strings.Contains(help, "-bin path") {
		t.Errorf("help lacks \"-bin path\":\n%s", help)
	}
	if strings.Contains(help, "-bin serve") {
		t.Errorf("help shows serve as -bin's value:\n%s", help)
	}
}
