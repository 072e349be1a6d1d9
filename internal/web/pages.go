package web

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"blog/internal/api"
	"blog/internal/comment"
	"blog/internal/page"
	"blog/internal/post"
)

// Page sizes of the two lists.
const (
	postsPerPage    = 10
	commentsPerPage = 50
	// maxForm bounds a form body: far above the APIs' own limits, so they
	// decide what is too long and say so in the form.
	maxForm = 256 << 10
)

// homePage is the data of the post list, newest first.
type homePage struct {
	Posts []post.Post
	After string // this page's cursor; "" on the first page
	Next  string // the older page's cursor (?after=); "" on the last page
	Newer string // the newer page's bound (?before=); "" on the first page
}

func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	after, ok := cursorParam(q.Get("after"))
	rawBefore, okBefore := cursorParam(q.Get("before"))
	if !ok || !okBefore {
		s.fail(w, r, http.StatusBadRequest, "This page link is not valid. Start again from the home page.")
		return
	}
	var (
		posts []post.Post
		next  string
		newer bool
		err   error
	)
	if rawBefore != "" && after == "" {
		b, _ := page.Decode(rawBefore)
		posts, newer, err = s.postsBefore(r.Context(), b, postsPerPage)
		if err == nil && len(posts) > 0 {
			next = posts[len(posts)-1].Cursor().Encode() // older ones follow: the bound
		}
	} else {
		posts, next, err = s.api.listPosts(r.Context(), after, postsPerPage)
		newer = after != ""
	}
	if err != nil {
		s.unavailable(w, r, err)
		return
	}
	pg := homePage{Posts: posts, After: after, Next: next}
	if newer && len(posts) > 0 {
		pg.Newer = posts[0].Cursor().Encode()
	}
	s.render(w, r, http.StatusOK, "home", "Posts", pg)
}

// postPage is the data of a post with a page of its comments.
type postPage struct {
	Post     post.Post
	Comments []commentView
	Count    int
	After    string // where this page starts (exclusive); "" from the first comment
	Next     string // the newer page's cursor (?after=); "" on the latest
	Older    string // the older page's bound (?before=); "" on the first
	Latest   bool   // this is the latest page (no ?after= or ?before=)
	// Start and End bound the comments this page shows, for the live
	// script: after Start (nil: from the first), up to End (nil: no end,
	// the last page takes new comments).
	Start, End *page.Cursor
	Form       commentForm
	Template   commentView // an empty comment for the script's <template>
	MaxChars   int         // a comment's limit, in characters
}

// commentView is a comment as its template needs it.
type commentView struct {
	ID, PostID, Text string
	CreatedAt        time.Time
	UpdatedAt        *time.Time
	Author           bool // show moderation controls
}

// commentForm is the state of the comment form. Token is its one-time
// form token, issued at each render.
type commentForm struct {
	Text, Error, Token string
}

func (s *Server) post(w http.ResponseWriter, r *http.Request) {
	id, after, ok := s.postParams(w, r, r.URL.Query().Get("after"))
	if ok {
		s.renderPost(w, r, http.StatusOK, id, after, commentForm{})
	}
}

// postParams validates a post page's id and comment cursor, answering the
// request itself when they are not valid.
func (s *Server) postParams(w http.ResponseWriter, r *http.Request, rawAfter string) (id, after string, ok bool) {
	id = r.PathValue("id")
	if !api.ValidID(id) {
		s.fail(w, r, http.StatusNotFound, "There is no post at this address.")
		return "", "", false
	}
	if after, ok = cursorParam(rawAfter); !ok {
		s.fail(w, r, http.StatusBadRequest, "This page link is not valid.")
	}
	return id, after, ok
}

// renderPost fetches a post and a page of its comments, from the two
// services at once, and renders them with the comment form in state form.
func (s *Server) renderPost(w http.ResponseWriter, r *http.Request, code int, id, after string, form commentForm) {
	// A page is either the comments after a cursor (?after=), or those just
	// before one (?before=), or, by default, the latest.
	var before *page.Cursor
	if after == "" && r.Method == http.MethodGet {
		if b := r.URL.Query().Get("before"); b != "" {
			c, err := page.Decode(b)
			if err != nil {
				s.fail(w, r, http.StatusBadRequest, "This page link is not valid.")
				return
			}
			before = &c
		}
	}
	var (
		wg       sync.WaitGroup
		p        post.Post
		postErr  error
		comments []comment.Comment
		next     string
		older    bool
		listErr  error
	)
	wg.Go(func() { p, postErr = s.api.getPost(r.Context(), id) })
	wg.Go(func() {
		if after != "" {
			comments, next, listErr = s.api.listComments(r.Context(), id, after, commentsPerPage)
			older = true
			return
		}
		comments, older, listErr = s.commentsBefore(r.Context(), id, before, commentsPerPage)
	})
	wg.Wait()
	switch {
	case postErr != nil && status(postErr) == http.StatusNotFound:
		s.fail(w, r, http.StatusNotFound, "There is no post at this address. It may have been deleted.")
		return
	case postErr != nil:
		s.unavailable(w, r, postErr)
		return
	case listErr != nil && status(listErr) == http.StatusNotFound:
		s.fail(w, r, http.StatusNotFound, "There is no post at this address. It may have been deleted.")
		return
	case listErr != nil:
		s.unavailable(w, r, listErr)
		return
	}
	author := s.author(r)
	form.Token = s.forms.issue()
	pg := postPage{
		Post: p, Count: p.CommentCount, After: after, Form: form,
		Template: commentView{PostID: id, Author: author}, MaxChars: comment.MaxTextChars,
		Latest: after == "" && before == nil,
	}
	for _, c := range comments {
		pg.Comments = append(pg.Comments, commentView{
			ID: c.ID, PostID: id, Text: c.Text, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt, Author: author,
		})
	}
	// The comments service may be a moment ahead of the post's count.
	pg.Count = max(pg.Count, len(comments))
	pg.paginate(comments, after, next, before, older)
	s.render(w, r, code, "post", p.Title, pg)
}

// paginate sets the page's links and live range from the comments shown:
// those after the cursor after (next: the service's link to the page after
// them), those before the cursor before, or the latest (older: there are
// older ones).
func (pg *postPage) paginate(comments []comment.Comment, after, next string, before *page.Cursor, older bool) {
	switch {
	case after != "":
		c, _ := page.Decode(after)
		pg.Start = &c
		if next != "" {
			pg.Next = next
		}
	case older && len(comments) > 0:
		// The live range starts just before the first comment shown.
		first := comments[0].Cursor()
		start := page.Cursor{At: first.At.Add(-time.Millisecond), ID: strings.Repeat("f", 24)}
		pg.Start, pg.After = &start, start.Encode()
	}
	if len(comments) > 0 {
		if older {
			pg.Older = comments[0].Cursor().Encode()
		}
		last := comments[len(comments)-1].Cursor()
		if before != nil || next != "" {
			pg.Next = last.Encode()
			pg.End = &last
		}
	} else if before != nil {
		pg.Next = before.Encode()
	}
}

// pageCommentsLimit is how many comments one refresh of a page reads: a
// page shows commentsPerPage, plus those that arrived live since it opened.
const pageCommentsLimit = page.MaxLimit

// pageComments answers GET /posts/{id}/comments?after=C with the comments
// after C (from the first when C is empty), oldest first, as JSON
// {"comments": [...], "complete": bool}: complete is false when more follow
// than one answer holds. The live script of a post page reads it when the
// post's event stream says its comments changed: the stream carries the
// latest comments only, and this way every comment a page shows, whichever
// page it is, is removed, edited or added in place.
func (s *Server) pageComments(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	after, ok := cursorParam(r.URL.Query().Get("after"))
	if !api.ValidID(id) || !ok {
		api.WriteProblem(w, r, api.NewProblem(http.StatusBadRequest, "The post id or the cursor is not valid."))
		return
	}
	cs, next, err := s.api.listComments(r.Context(), id, after, pageCommentsLimit)
	switch {
	case err != nil && status(err) == http.StatusNotFound:
		api.WriteProblem(w, r, api.NewProblem(http.StatusNotFound, "This post has been deleted."))
		return
	case err != nil:
		s.log.Error("api call failed", "method", r.Method, "path", r.URL.Path, "err", err)
		api.WriteProblem(w, r, api.NewProblem(http.StatusServiceUnavailable, "The comments service is not answering."))
		return
	}
	if cs == nil {
		cs = []comment.Comment{}
	}
	w.Header().Set("Cache-Control", "no-store")
	api.WriteJSON(w, http.StatusOK, struct {
		Comments []comment.Comment `json:"comments"`
		Complete bool              `json:"complete"`
	}{cs, next == ""})
}

// addComment handles the comment form: create the comment, then redirect to
// the page that shows it (POST-redirect-GET), or show the form again with
// what was wrong. The form's one-time token (see formtoken.go) makes a
// double submit create one comment: the duplicate is sent where the first
// submission was.
func (s *Server) addComment(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	id, after, ok := s.postParams(w, r, r.PostForm.Get("after"))
	if !ok {
		return
	}
	text := r.PostForm.Get("text")
	tok, first, ok := s.forms.spend(r.PostForm.Get("token"))
	switch {
	case !ok:
		s.renderPost(w, r, http.StatusConflict, id, after, commentForm{
			Text: text, Error: "This form was open too long or is from an older page. Check your comment and send it again.",
		})
		return
	case !first:
		s.sameAsFirst(w, r, tok, postURL(id, after)+"#comments")
		return
	}
	location := ""
	defer func() { s.forms.settle(tok, location) }()
	if wait, ok := s.comment(r); !ok {
		s.renderPost(w, r, http.StatusTooManyRequests, id, after, commentForm{
			Text: text, Error: "You are posting comments very quickly. Please wait " + wait.String() + " and send it again.",
		})
		return
	}
	c, err := s.api.createComment(withIdempotencyKey(r.Context(), tok.value), id, text)
	if err != nil {
		switch code := status(err); code {
		case http.StatusNotFound:
			s.fail(w, r, http.StatusNotFound, "There is no post at this address. It may have been deleted.")
		case http.StatusTooManyRequests:
			s.renderPost(w, r, code, id, after, commentForm{
				Text: text, Error: "Comments are coming in very quickly right now. Please wait a minute and send yours again.",
			})
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if code == http.StatusBadRequest {
				code = http.StatusUnprocessableEntity
			}
			fields := fieldErrors(err, map[string]string{"#/text": "Your comment"})
			s.renderPost(w, r, code, id, after, commentForm{Text: text, Error: fields[""] + fields["#/text"]})
		default:
			s.unavailable(w, r, err)
		}
		return
	}
	location = s.commentLocation(r.Context(), id, after, c)
	http.Redirect(w, r, location, http.StatusSeeOther)
}

// sameAsFirst answers a second submission of a form: once the first has an
// outcome (waiting at most 10 s), it is sent where the first was, or to
// fallback when the first failed or is still running.
func (s *Server) sameAsFirst(w http.ResponseWriter, r *http.Request, tok *formToken, fallback string) {
	s.forms.mu.Lock()
	done := tok.done
	s.forms.mu.Unlock()
	select {
	case <-done:
	case <-r.Context().Done():
		return
	case <-time.After(10 * time.Second):
	}
	s.forms.mu.Lock()
	location := tok.location
	s.forms.mu.Unlock()
	if location == "" {
		location = fallback
	}
	http.Redirect(w, r, location, http.StatusSeeOther)
}

// commentLocation returns the address of the page that shows a new
// comment, anchored on it: the latest page when it is there (the common
// case), else the page that ends with it.
func (s *Server) commentLocation(ctx context.Context, postID, after string, c comment.Comment) string {
	anchor := "#c-" + c.ID
	if cs, _, err := s.commentsBefore(ctx, postID, nil, commentsPerPage); err == nil {
		for _, x := range cs {
			if x.ID == c.ID {
				return "/posts/" + postID + anchor
			}
		}
	}
	// Just after the comment: a millisecond later, before every id.
	end := page.Cursor{At: c.CreatedAt.Add(time.Millisecond), ID: strings.Repeat("0", 24)}
	return "/posts/" + postID + "?before=" + url.QueryEscape(end.Encode()) + anchor
}

func postURL(id, after string) string {
	u := "/posts/" + id
	if after != "" {
		u += "?after=" + url.QueryEscape(after)
	}
	return u
}

// cursorParam accepts an empty cursor or one this system made.
func cursorParam(s string) (string, bool) {
	if s == "" {
		return "", true
	}
	_, err := page.Decode(s)
	return s, err == nil
}

// parseForm reads a bounded urlencoded form, answering the request itself
// when it cannot.
func (s *Server) parseForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.fail(w, r, http.StatusRequestEntityTooLarge, "What you sent is far too long.")
		} else {
			s.fail(w, r, http.StatusBadRequest, "The form could not be read. Go back and try again.")
		}
		return false
	}
	return true
}

// fieldErrors turns an API's problem into messages by form field: the
// problem's field errors named with the form's labels (keyed by JSON
// pointer), and under "" any message that belongs to no field shown.
func fieldErrors(err error, labels map[string]string) map[string]string {
	out := map[string]string{}
	var p *problemError
	if !errors.As(err, &p) {
		out[""] = "That did not work. Please try again."
		return out
	}
	for _, fe := range p.Errors {
		if label, ok := labels[fe.Pointer]; ok {
			out[fe.Pointer] = label + " " + fe.Detail + "."
		}
	}
	if len(out) == 0 {
		msg := p.Detail
		if msg == "" {
			msg = p.Title
		}
		out[""] = msg
	}
	return out
}

// Authors' pages.

// author reports whether the request may write: it comes from a signed-in
// author, or no token is configured, in which case the APIs take writes
// from anyone who reaches them and so does the browser (the config allows
// that only on a loopback address, or with BLOG_INSECURE).
func (s *Server) author(r *http.Request) bool {
	return !s.sessions.enabled || s.sessions.valid(r, time.Now())
}

// authorOnly guards an author's page: it does not exist without a token,
// and asks a visitor to sign in.
func (s *Server) authorOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		switch {
		case s.author(r):
			w.Header().Set("Cache-Control", "no-store")
			h(w, r)
		case r.Method == http.MethodGet:
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		default:
			s.fail(w, r, http.StatusForbidden, "Sign in as an author first.")
		}
	}
}

// loginPage is the data of the sign-in form.
type loginPage struct {
	Next, Error string
}

func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) {
	if !s.sessions.enabled {
		s.fail(w, r, http.StatusNotFound, "Author sign-in is not set up on this blog.")
		return
	}
	s.render(w, r, http.StatusOK, "login", "Author sign-in", loginPage{Next: localPath(r.URL.Query().Get("next"))})
}

func (s *Server) loginSubmit(w http.ResponseWriter, r *http.Request) {
	if !s.sessions.enabled {
		s.fail(w, r, http.StatusNotFound, "Author sign-in is not set up on this blog.")
		return
	}
	if !s.parseForm(w, r) {
		return
	}
	next := localPath(r.PostForm.Get("next"))
	if wait, ok := s.login(r); !ok {
		s.render(w, r, http.StatusTooManyRequests, "login", "Author sign-in",
			loginPage{Next: next, Error: "Too many attempts. Wait " + wait.String() + " and try again."})
		return
	}
	if !s.sessions.check(r.PostForm.Get("token")) {
		s.render(w, r, http.StatusUnauthorized, "login", "Author sign-in",
			loginPage{Next: next, Error: "That is not the blog's API token."})
		return
	}
	s.sessions.issue(w, r, time.Now())
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	s.sessions.clear(w, r)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// localPath returns p if it is a path on this site, else "/", so a sign-in
// link cannot send an author elsewhere.
func localPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") {
		return "/"
	}
	u, err := url.Parse(p)
	if err != nil || u.Host != "" || u.Scheme != "" {
		return "/"
	}
	return u.RequestURI()
}

// editorPage is the data of the post form, for a new post or an edit.
type editorPage struct {
	ID             string // "" for a new post
	Title, Content string
	Errors         map[string]string // by field: "title", "content", "" for the form
}

// MaxTitle and MaxContent are the post's limits, in characters.
func (editorPage) MaxTitle() int   { return post.MaxTitleChars }
func (editorPage) MaxContent() int { return post.MaxContentChars }

func (s *Server) newPost(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusOK, "editor", "New post", editorPage{})
}

var postLabels = map[string]string{"#/title": "The title", "#/content": "The text"}

func (s *Server) createPost(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	in := post.NewPost{Title: r.PostForm.Get("title"), Content: r.PostForm.Get("content")}
	p, err := s.api.createPost(r.Context(), in)
	if err != nil {
		s.editorFailed(w, r, err, editorPage{Title: in.Title, Content: in.Content}, "New post")
		return
	}
	http.Redirect(w, r, "/posts/"+p.ID, http.StatusSeeOther)
}

func (s *Server) editPost(w http.ResponseWriter, r *http.Request) {
	id, _, ok := s.postParams(w, r, "")
	if !ok {
		return
	}
	p, err := s.api.getPost(r.Context(), id)
	if err != nil {
		if status(err) == http.StatusNotFound {
			s.fail(w, r, http.StatusNotFound, "There is no post at this address.")
			return
		}
		s.unavailable(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "editor", "Edit: "+p.Title, editorPage{ID: p.ID, Title: p.Title, Content: p.Content})
}

func (s *Server) updatePost(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	id, _, ok := s.postParams(w, r, "")
	if !ok {
		return
	}
	title, content := r.PostForm.Get("title"), r.PostForm.Get("content")
	if _, err := s.api.updatePost(r.Context(), id, post.PatchPost{Title: &title, Content: &content}); err != nil {
		s.editorFailed(w, r, err, editorPage{ID: id, Title: title, Content: content}, "Edit post")
		return
	}
	http.Redirect(w, r, "/posts/"+id, http.StatusSeeOther)
}

// editorFailed shows the post form again with the API's complaints, or the
// error page when the API could not answer.
func (s *Server) editorFailed(w http.ResponseWriter, r *http.Request, err error, pg editorPage, title string) {
	code := status(err)
	switch code {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnauthorized:
		if code == http.StatusBadRequest {
			code = http.StatusUnprocessableEntity
		}
		pg.Errors = fieldErrors(err, postLabels)
		s.render(w, r, code, "editor", title, pg)
	case http.StatusNotFound:
		s.fail(w, r, http.StatusNotFound, "There is no post at this address. It may have been deleted.")
	default:
		s.unavailable(w, r, err)
	}
}

func (s *Server) deletePost(w http.ResponseWriter, r *http.Request) {
	id, _, ok := s.postParams(w, r, "")
	if !ok {
		return
	}
	if err := s.api.deletePost(r.Context(), id); err != nil && status(err) != http.StatusNotFound {
		s.unavailable(w, r, err)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (s *Server) deleteComment(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	id, after, ok := s.postParams(w, r, r.PostForm.Get("after"))
	if !ok {
		return
	}
	cid := r.PathValue("cid")
	if !api.ValidID(cid) {
		s.fail(w, r, http.StatusNotFound, "There is no such comment.")
		return
	}
	if err := s.api.deleteComment(r.Context(), cid); err != nil && status(err) != http.StatusNotFound {
		s.unavailable(w, r, err)
		return
	}
	http.Redirect(w, r, postURL(id, after)+"#comments", http.StatusSeeOther)
}
