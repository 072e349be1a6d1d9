package web

import (
	"bytes"
	"html"
	"html/template"
	"strings"

	"github.com/microcosm-cc/bluemonday"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/parser"
	"github.com/yuin/goldmark/text"
	"github.com/yuin/goldmark/util"
)

// Posts are written in Markdown: CommonMark, plus bare URLs made links
// (GFM's autolink extension), rendered by goldmark. Raw HTML in a post never
// passes: goldmark leaves it out (its unsafe mode is off), and the result
// is sanitised again with bluemonday's policy for user content, which keeps
// formatting and links only, and marks links rel="nofollow noopener".
var (
	md = goldmark.New(goldmark.WithExtensions(extension.Linkify, extension.Strikethrough, extension.Table),
		goldmark.WithParserOptions(parser.WithASTTransformers(util.Prioritized(demoteHeadings{}, 100))))
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

// demoteHeadings moves every heading of a post one level down (# becomes
// <h2>, ###### stays <h6>): the page's one <h1> is the post's title, so a
// "# Heading" in the content neither competes with it in size nor gives the
// page a second top-level heading for screen readers.
type demoteHeadings struct{}

// Transform implements goldmark's parser.ASTTransformer.
func (demoteHeadings) Transform(doc *ast.Document, _ text.Reader, _ parser.Context) {
	_ = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if h, ok := n.(*ast.Heading); ok && entering {
			h.Level = min(h.Level+1, 6)
		}
		return ast.WalkContinue, nil
	})
}

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
