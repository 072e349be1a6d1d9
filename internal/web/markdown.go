package web

import (
	"bytes"
	"html"
	"html/template"
	"strings"

	"github.com/microcosm-cc/bluemonday"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"
)

// Posts are written in Markdown: CommonMark, plus bare URLs made links
// (GFM's autolink extension), rendered by goldmark. Raw HTML in a post never
// passes: goldmark leaves it out (its unsafe mode is off), and the result
// is sanitised again with bluemonday's policy for user content, which keeps
// formatting and links only, and marks links rel="nofollow noopener".
var (
	md = goldmark.New(goldmark.WithExtensions(extension.Linkify, extension.Strikethrough, extension.Table))
	// postPolicy is built once: bluemonday policies are safe for
	// concurrent use once configured.
	postPolicy = func() *bluemonday.Policy {
		p := bluemonday.UGCPolicy()
		p.RequireNoFollowOnLinks(true)
		p.RequireNoReferrerOnLinks(true)
		p.AddTargetBlankToFullyQualifiedLinks(false)
		return p
	}()
	textPolicy = bluemonday.StrictPolicy()
)

// markdown renders a post's Markdown content as sanitised HTML.
func markdown(src string) template.HTML {
	var buf bytes.Buffer
	if err := md.Convert([]byte(src), &buf); err != nil {
		// goldmark's HTML renderer only fails on a failing writer, which a
		// buffer is not; show the text as text rather than nothing.
		return template.HTML("<p>" + template.HTMLEscapeString(src) + "</p>")
	}
	return template.HTML(postPolicy.SanitizeBytes(buf.Bytes())) //nolint:gosec // sanitised just above
}

// plainText returns a post's Markdown content as the text a reader sees,
// without markup, for excerpts.
func plainText(src string) string {
	var buf bytes.Buffer
	if err := md.Convert([]byte(src), &buf); err != nil {
		return src
	}
	// Block ends become spaces, so words of two paragraphs do not run together.
	s := strings.NewReplacer("</p>", " </p>", "<br>", " ", "</li>", " </li>", "</h1>", " ", "</h2>", " ", "</h3>", " ").Replace(buf.String())
	return strings.TrimSpace(html.UnescapeString(textPolicy.Sanitize(s)))
}
