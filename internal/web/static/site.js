// site.js: small improvements every page gets when JavaScript runs; each
// page works without it.
//
//  * Times in the reader's own time zone: every <time datetime> is shown in
//    local time (the server writes UTC, which is what shows without script).
//  * One submit: a form's submit button is disabled while it is sent, so a
//    double click sends it once (the server's one-time token is the guard
//    that holds either way).
//  * Deleting asks first: a form with data-confirm asks its question.
//  * Limits in characters: a field with data-max-chars shows how many
//    characters are left and refuses more, counting characters (Unicode
//    code points) as the server does, not UTF-16 units as maxlength would.
(function () {
  'use strict';

  var fmt = null;
  try {
    fmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
  } catch (e) { /* very old browser: keep UTC */ }

  // localTime formats an ISO 8601 instant in the reader's time zone.
  function localTime(iso) {
    var d = new Date(iso);
    if (!fmt || isNaN(d.getTime())) return null;
    return fmt.format(d);
  }
  function localize(root) {
    var els = (root || document).querySelectorAll('time[datetime]');
    for (var i = 0; i < els.length; i++) {
      var t = els[i];
      if (!t.dateTime || t.dataset.local === '1') continue;
      var s = localTime(t.dateTime);
      if (s) {
        t.title = t.textContent; // the UTC form, on hover
        t.textContent = s;
        t.dataset.local = '1';
      }
    }
  }
  // For live.js, which adds comments after the page loaded.
  window.blogTime = { format: localTime, localize: localize };

  function chars(s) {
    var n = 0;
    for (var i = 0; i < s.length; i++) {
      var c = s.charCodeAt(i);
      if (c < 0xd800 || c > 0xdbff) n++; // a high surrogate starts a pair counted once
    }
    return n;
  }
  function counter(field) {
    var max = Number(field.dataset.maxChars);
    var out = document.getElementById(field.id + '-count');
    function update() {
      var n = chars(field.value);
      var left = max - n;
      if (out) {
        out.textContent = left >= 0 ? left + ' characters left' : -left + ' characters too many';
        out.dataset.over = left < 0 ? '1' : '';
      }
      field.setCustomValidity(left < 0 ? 'At most ' + max + ' characters: ' + -left + ' too many.' : '');
    }
    field.addEventListener('input', update);
    update();
  }

  document.addEventListener('submit', function (e) {
    var form = e.target;
    if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      e.preventDefault();
      return;
    }
    if (form.dataset.sending === '1') { // a second click while the first is sent
      e.preventDefault();
      return;
    }
    form.dataset.sending = '1';
    form.setAttribute('aria-busy', 'true');
    var buttons = form.querySelectorAll('button[type="submit"], button:not([type])');
    for (var i = 0; i < buttons.length; i++) buttons[i].disabled = true;
  });
  // Back to a page from the bfcache: its forms may be sent again.
  window.addEventListener('pageshow', function () {
    var forms = document.querySelectorAll('form[data-sending="1"]');
    for (var i = 0; i < forms.length; i++) {
      forms[i].dataset.sending = '';
      forms[i].removeAttribute('aria-busy');
      var b = forms[i].querySelectorAll('button');
      for (var j = 0; j < b.length; j++) b[j].disabled = false;
    }
  });

  localize(document);
  var limited = document.querySelectorAll('[data-max-chars]');
  for (var i = 0; i < limited.length; i++) counter(limited[i]);
})();
