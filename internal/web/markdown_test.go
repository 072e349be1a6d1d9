package web

import (
	"strings"
	"testing"
)

// TestMarkdown: posts render as CommonMark with bare URLs as links, and no
// raw HTML or script URL ever reaches the page.
func TestMarkdown(t *testing.T) {
	tests := []struct {
		name, src string
		want, not []string
	}{
		{name: "paragraphs", src: "First.\n\nSecond.", want: []string{"<p>First.</p>", "<p>Second.</p>"}},
		{name: "emphasis-and-lists", src: "**bold** _it_\n\n- one\n- two", want: []string{"<strong>bold</strong>", "<em>it</em>", "<li>one</li>"}},
		{name: "bare-url-is-a-link", src: "See https://example.org/a?b=1 now", want: []string{`<a href="https://example.org/a?b=1" rel="nofollow noreferrer">https://example.org/a?b=1</a>`}},
		{name: "markdown-link", src: "[docs](https://example.org/docs)", want: []string{`<a href="https://example.org/docs" rel="nofollow noreferrer">docs</a>`}},
		{name: "script-dropped", src: "Hi <script>alert(1)</script> there", not: []string{"<script", "</script"}},
		{name: "img-onerror-dropped", src: `<img src=x onerror=alert(1)>`, not: []string{"<img", "onerror"}},
		{name: "html-block-dropped", src: "<div onclick=\"x()\">\n\nhi\n\n</div>", not: []string{"<div", "onclick"}},
		{name: "javascript-url-dropped", src: "[x](javascript:alert(1))", not: []string{"javascript:"}},
		{name: "headings-below-the-title", src: "# One\n\n###### Six", want: []string{"<h2", ">One</h2>", "<h6", ">Six</h6>"}, not: []string{"<h1", "<h7"}},
		{name: "code-escaped", src: "`<b>` and\n\n    <i>block</i>", want: []string{"<code>&lt;b&gt;</code>", "&lt;i&gt;block&lt;/i&gt;"}, not: []string{"<b>", "<i>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(markdown(tt.src))
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("lacks %s:\n%s", w, got)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(got, n) {
					t.Errorf("holds %s:\n%s", n, got)
				}
			}
		})
	}
	if got := plainText("# Title\n\n**Bold** [link](https://x.org) &amp; more\n\nNext"); got != "Title Bold link & more  Next" && !strings.Contains(got, "Bold link & more") {
		t.Errorf("plain text %q", got)
	}
}
