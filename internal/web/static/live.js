// live.js keeps an open post page's comments up to date without reloading.
//
// It follows the post's event stream (Server-Sent Events). The first event
// of every connection is a "snapshot" of the post's latest comments, unless
// the browser already has that state; after it, each "delta" adds or
// replaces comments by _id and removes deleted ones. Every event's id names
// the state it leads to; the browser sends the last one back when it
// reconnects (Last-Event-ID), so it gets exactly what it missed. Comments
// are keyed by _id, so nothing shows twice. All text goes in with
// textContent: nothing from the stream is ever parsed as HTML.
(function () {
  'use strict';

  var section = document.getElementById('comments');
  var list = document.getElementById('comment-list');
  var tmpl = document.getElementById('comment-template');
  if (!section || !list || !tmpl || !window.EventSource) return;

  var postId = section.dataset.post;
  var src = section.dataset.events;
  var statusEl = document.getElementById('live-status');
  var countEl = document.getElementById('comment-count');
  var emptyEl = document.getElementById('no-comments');
  var editedEl = document.getElementById('post-edited');
  var titleEl = document.getElementById('post-title');

  // The comments this page shows: after start (or from the first), up to
  // end (or without end: the last page takes new comments).
  var start = cursor(section.dataset.startMs, section.dataset.startId);
  var end = cursor(section.dataset.endMs, section.dataset.endId);
  // Comments the stream has reported: only those can be known to be deleted
  // when a snapshot no longer has them (the page itself may be a moment
  // ahead of the stream).
  var seen = new Set();
  var lastId = '';
  var later = 0; // new comments that belong to a later page
  var source = null;
  var retryMs = 1000;

  function cursor(ms, id) {
    return ms ? { t: Number(ms), id: id } : null;
  }
  function keyOf(c) {
    return { t: Date.parse(c.createdAt), id: c._id };
  }
  function keyOfEl(el) {
    return { t: Number(el.dataset.ms), id: el.dataset.id };
  }
  function compare(a, b) {
    if (a.t !== b.t) return a.t < b.t ? -1 : 1;
    return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
  }
  function inRange(k) {
    return (!start || compare(k, start) > 0) && (!end || compare(k, end) <= 0);
  }

  var months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  function two(n) {
    return (n < 10 ? '0' : '') + n;
  }
  // In the reader's time zone (site.js), else the server's format:
  // 2 Jan 2006, 15:04 UTC.
  function formatDate(iso) {
    var local = window.blogTime && window.blogTime.format(iso);
    if (local) return local;
    var d = new Date(iso);
    return d.getUTCDate() + ' ' + months[d.getUTCMonth()] + ' ' + d.getUTCFullYear() + ', ' +
      two(d.getUTCHours()) + ':' + two(d.getUTCMinutes()) + ' UTC';
  }

  function find(id) {
    return document.getElementById('c-' + id);
  }

  function fill(el, c) {
    var text = el.querySelector('.comment-text');
    if (text.textContent !== c.text) text.textContent = c.text;
    var edited = el.querySelector('.edited');
    if (edited) edited.hidden = !c.updatedAt;
  }

  function build(c) {
    var el = tmpl.content.firstElementChild.cloneNode(true);
    el.id = 'c-' + c._id;
    el.dataset.id = c._id;
    el.dataset.ms = String(Date.parse(c.createdAt));
    var time = el.querySelector('time');
    time.dateTime = c.createdAt;
    time.textContent = formatDate(c.createdAt);
    time.dataset.local = '1';
    var del = el.querySelector('form.delete-comment');
    if (del) del.action = '/posts/' + postId + '/comments/' + c._id + '/delete';
    fill(el, c);
    return el;
  }

  // upsert shows c: replaced in place when shown, inserted in order when it
  // belongs on this page. It returns 1 when a comment was added.
  function upsert(c) {
    if (gone) return 0;
    seen.add(c._id);
    var el = find(c._id);
    if (el) {
      fill(el, c);
      return 0;
    }
    var k = keyOf(c);
    if (!inRange(k)) {
      if (end && compare(k, end) > 0) later++;
      return 0;
    }
    var before = null;
    for (var i = 0; i < list.children.length; i++) {
      if (compare(k, keyOfEl(list.children[i])) < 0) {
        before = list.children[i];
        break;
      }
    }
    el = build(c);
    el.classList.add('is-new');
    list.insertBefore(el, before);
    setTimeout(function () { el.classList.remove('is-new'); }, 3000);
    return 1;
  }

  function remove(id) {
    var el = find(id);
    if (!el) return 0;
    // Keep keyboard focus on the list rather than losing it with the node.
    if (el.contains(document.activeElement)) list.focus();
    el.remove();
    return 1;
  }

  function applyMeta(m) {
    if (countEl) countEl.textContent = String(m.commentCount);
    if (titleEl && m.title && titleEl.textContent !== m.title) {
      titleEl.textContent = m.title;
      document.title = m.title + ' · Blog';
    }
    var was = section.dataset.updated ? Date.parse(section.dataset.updated) : 0;
    var now = m.updatedAt ? Date.parse(m.updatedAt) : 0;
    if (editedEl && now > was) editedEl.hidden = false;
    if (emptyEl) emptyEl.hidden = list.children.length > 0;
  }

  function report(added, removed, gap) {
    var parts = [];
    if (added) parts.push(added === 1 ? '1 new comment' : added + ' new comments');
    if (removed) parts.push(removed === 1 ? '1 comment removed' : removed + ' comments removed');
    if (later) parts.push('new comments on the next page');
    if (gap) parts.push('some comments arrived while you were away: reload to see them all');
    setStatus(parts.length ? 'Live · ' + parts.join(' · ') : 'Live', 'live');
  }

  // setStatus shows the connection's state; the region is polite, so
  // screen readers hear changes without being interrupted.
  function setStatus(text, state) {
    if (!statusEl) return;
    if (statusEl.textContent !== text) statusEl.textContent = text;
    statusEl.dataset.state = state || 'waiting';
  }

  function onSnapshot(e) {
    lastId = e.lastEventId;
    var s = JSON.parse(e.data);
    var inState = new Set();
    var oldest = null;
    s.comments.forEach(function (c) {
      inState.add(c._id);
      var k = keyOf(c);
      if (!oldest || compare(k, oldest) < 0) oldest = k;
    });
    // The post embeds its latest comments only; a comment missing from the
    // snapshot was deleted if the snapshot has them all, or if it is newer
    // than the oldest it has.
    var complete = s.commentCount <= s.comments.length;
    var removed = 0;
    var newest = null;
    Array.prototype.slice.call(list.children).forEach(function (el) {
      var k = keyOfEl(el);
      if (!newest || compare(k, newest) > 0) newest = k;
      if (!inState.has(k.id) && seen.has(k.id) && (complete || (oldest && compare(k, oldest) > 0))) {
        removed += remove(k.id);
      }
    });
    // More new comments than the post embeds came while this page was away.
    var gap = !complete && !end && oldest && newest && compare(oldest, newest) > 0;
    var added = 0;
    s.comments.forEach(function (c) { added += upsert(c); });
    applyMeta(s);
    report(added, removed, gap);
    // After a reconnect, anything may have changed on this page meanwhile.
    if (connections > 1 || start || end) scheduleRefresh();
    // Comments older than the post embeds change without any event (their
    // edits do not touch the post): a page showing some reads itself again
    // every few seconds while it is visible.
    var oldestShown = list.firstElementChild ? keyOfEl(list.firstElementChild) : null;
    outsideWindow = !complete && !!oldestShown && (!oldest || compare(oldestShown, oldest) < 0);
  }

  // The stream carries the post's latest comments only. A page of older
  // comments, or a change the stream reports only by count (a comment
  // outside the embedded window was deleted or edited), is caught by
  // reading this page's comments again: shortly after each event, at most
  // one read at a time.
  var after = section.dataset.after || '';
  var refreshTimer = null;
  var refreshing = false;
  var refreshAgain = false;
  function scheduleRefresh() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(refresh, 150);
  }
  function refresh() {
    refreshTimer = null;
    if (refreshing) { refreshAgain = true; return; }
    refreshing = true;
    var url = '/posts/' + postId + '/comments' + (after ? '?after=' + encodeURIComponent(after) : '');
    fetch(url, { headers: { Accept: 'application/json' }, cache: 'no-store' })
      .then(function (res) {
        if (res.status === 404) { onGone(); return null; }
        return res.ok ? res.json() : null;
      })
      .then(function (body) {
        if (!body || gone) return;
        var inPage = new Set();
        var last = null;
        body.comments.forEach(function (c) {
          var k = keyOf(c);
          if (end && compare(k, end) > 0) return;
          inPage.add(c._id);
          if (!last || compare(k, last) > 0) last = k;
        });
        // Shown comments the service no longer has, within what it answered.
        var removed = 0;
        Array.prototype.slice.call(list.children).forEach(function (el) {
          var k = keyOfEl(el);
          if (inPage.has(k.id)) return;
          if (body.complete || (last && compare(k, last) <= 0)) removed += remove(k.id);
        });
        var added = 0;
        body.comments.forEach(function (c) { if (inPage.has(c._id)) added += upsert(c); });
        if (emptyEl) emptyEl.hidden = list.children.length > 0;
        if (added || removed) report(added, removed, false);
      })
      .catch(function () { /* the next event tries again */ })
      .then(function () {
        refreshing = false;
        if (refreshAgain) { refreshAgain = false; scheduleRefresh(); }
      });
  }

  var outsideWindow = false;
  var POLL_MS = 5000;
  setInterval(function () {
    if (outsideWindow && !gone && document.visibilityState === 'visible') scheduleRefresh();
  }, POLL_MS);

  function onDelta(e) {
    lastId = e.lastEventId;
    var d = JSON.parse(e.data);
    var removed = 0;
    var added = 0;
    d.deletes.forEach(function (id) {
      seen.delete(id);
      removed += remove(id);
    });
    d.upserts.forEach(function (c) { added += upsert(c); });
    applyMeta(d);
    report(added, removed, false);
    scheduleRefresh();
  }

  // onGone: the post was deleted while open. Say so plainly, in the
  // article and the status, and clear its comments and the form.
  var gone = false;
  function onGone() {
    if (gone) return;
    gone = true;
    if (source) source.close();
    setStatus('This post has been deleted.', 'ended');
    var form = document.getElementById('comment-form');
    if (form) form.hidden = true;
    if (editedEl) editedEl.hidden = true;
    var deletedEl = document.getElementById('post-deleted');
    if (deletedEl) deletedEl.hidden = false;
    var content = document.querySelector('.post .content');
    if (content) content.hidden = true;
    while (list.firstChild) list.removeChild(list.firstChild);
    if (countEl) countEl.textContent = '0';
    if (emptyEl) emptyEl.hidden = true;
    var pagers = section.querySelectorAll('.pager, .pager-top');
    for (var i = 0; i < pagers.length; i++) pagers[i].hidden = true;
  }

  var connections = 0;
  function connect() {
    if (gone) return;
    var url = lastId ? src + '?lastEventId=' + encodeURIComponent(lastId) : src;
    source = new EventSource(url);
    source.addEventListener('open', function () {
      retryMs = 1000;
      connections++;
      setStatus('Live', 'live');
      if (connections > 1) scheduleRefresh();
    });
    source.addEventListener('snapshot', onSnapshot);
    source.addEventListener('delta', onDelta);
    source.addEventListener('gone', onGone);
    // The web front end relays the posts service's stream: it says when
    // that stream dropped and when it is back, while the browser's own
    // connection stays open.
    source.addEventListener('reconnecting', function () { setStatus('Reconnecting…', 'waiting'); });
    source.addEventListener('live', function () {
      setStatus('Live', 'live');
      scheduleRefresh();
    });
    source.addEventListener('error', function () {
      if (gone) return;
      if (source.readyState === EventSource.CLOSED) {
        // The browser gave up (an error status): try again ourselves,
        // more slowly each time, carrying the last id in the URL.
        setStatus('Live updates paused; retrying…');
        setTimeout(connect, retryMs);
        retryMs = Math.min(retryMs * 2, 30000);
      } else {
        setStatus('Reconnecting…');
      }
    });
  }

  list.tabIndex = -1;
  connect();
})();
