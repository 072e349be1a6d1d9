// Browser tests of what readers and authors meet (issue 13): every page of
// comments live, one submit one comment, writing without a token, Markdown
// and long words, honest status, local times, limits in characters.
// Debian's Chromium driven by playwright-core, against the real binary run
// as three processes over one embedded store, with NO token configured
// (loopback only), as the README's run command starts it.
//
//   BLOG_BIN=/path/to/blog npm test          (from web/e2e, after npm ci)
//
// SCREENSHOTS=dir also saves docs' screenshots of a post page (light and
// dark) and the home page there.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { sys, start, stop, ready, up, down, launch, sleep } from './harness.mjs';

const LIVE_WITHIN_MS = 2000;

// api calls the services without a token: none is configured.
async function api(method, url, body) {
  const res = await fetch(url, { method, headers: { 'Content-Type': 'application/json' }, body: body && JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}
const newPost = (title, content = 'A post for the browser tests.') => api('POST', sys.posts + '/posts', { title, content });
const newComment = (postId, text) => api('POST', sys.comments + '/comments', { postId, text });
async function allComments(postId) {
  const out = [];
  let next = `/comments/${postId}?limit=100`;
  while (next) {
    const res = await fetch(sys.comments + next);
    assert.equal(res.status, 200);
    out.push(...(await res.json()));
    const m = /<([^>]+)>; rel="next"/.exec(res.headers.get('Link') || '');
    next = m ? m[1] : '';
  }
  return out;
}

function watch(page) {
  const problems = [];
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource|EventSource/.test(m.text())) problems.push('console: ' + m.text());
  });
  return problems;
}

const status = (page) => page.locator('#live-status').textContent();
async function waitStatus(page, re, timeout = LIVE_WITHIN_MS) {
  await page.waitForFunction((src) => new RegExp(src).test(document.getElementById('live-status').textContent), re.source, { timeout });
}
async function openPost(context, id, query = '') {
  const page = await context.newPage();
  const problems = watch(page);
  await page.goto(`${sys.web}/posts/${id}${query}`);
  await waitStatus(page, /^Live/, 10000);
  return { page, problems };
}

let browser;

before(async () => {
  await up();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await down();
});

// First, so the home page shows the docs' post alone.
test('screenshots for the docs', { timeout: 90000, skip: !process.env.SCREENSHOTS }, async () => {
  const dir = process.env.SCREENSHOTS;
  const post = await newPost('Live comments, without a reload',
    'This blog is two small services. The **posts** service keeps each post with its latest comments; the **comments** service owns the comments. A change stream keeps them in step.\n\n' +
    'Open this page in two windows and write a comment in one: it appears in the other at once. Read more at https://blog.logrocket.com/building-microservices-node-js/');
  await newComment(post._id, 'Just tried it with two windows side by side. The comment showed up before I could switch.');
  await newComment(post._id, 'What happens if the posts service restarts?\nDoes the page notice?');
  await newComment(post._id, 'It reconnects with Last-Event-ID and catches up: nothing lost, nothing twice.');
  for (const scheme of ['light', 'dark']) {
    const context = await launch({ colorScheme: scheme });
    try {
      const { page } = await openPost(context, post._id);
      await page.fill('#comment-text', 'Nice write-up!');
      await page.locator('#comment-text').blur();
      await page.screenshot({ path: join(dir, `screenshot-post-${scheme}.png`), fullPage: true });
      if (scheme === 'light') {
        await page.goto(`${sys.web}/`);
        await page.screenshot({ path: join(dir, 'screenshot-home.png'), fullPage: false });
      }
    } finally {
      await context.close();
    }
  }
});

test('every comment a page shows changes live, outside the latest 50 too', { timeout: 90000 }, async () => {
  const post = await newPost('Sixty comments');
  const cs = [];
  for (let i = 1; i <= 60; i++) cs.push(await newComment(post._id, `Comment #${i}`));
  const { page, problems } = await openPost(browser, post._id);
  // It opens on the latest 50 (#11-#60); the older page shows #1-#10.
  assert.equal(await page.locator('#comment-list > li').count(), 50);
  await Promise.all([page.waitForURL(/before=/), page.click('a:text("← Older comments")')]);
  await waitStatus(page, /^Live/, 10000);
  assert.equal(await page.locator('#comment-list > li').count(), 10);
  await page.locator(`#c-${cs[4]._id}`).waitFor();

  // #5 and #6 are outside the post's embedded latest 50.
  await api('DELETE', `${sys.comments}/comments/${cs[4]._id}`);
  await page.locator(`#c-${cs[4]._id}`).waitFor({ state: 'detached', timeout: LIVE_WITHIN_MS });
  await api('PATCH', `${sys.comments}/comments/${cs[5]._id}`, { text: 'Comment #6, edited' });
  // An edit of an old comment raises no post event: the page reads itself
  // again every 5 s while it shows comments older than the post embeds.
  await page.locator(`#c-${cs[5]._id} .comment-text`).filter({ hasText: 'Comment #6, edited' }).waitFor({ timeout: 5000 + LIVE_WITHIN_MS });
  assert.deepEqual(problems, []);
  await page.close();
});

test('a busy post opens on its latest comments, pages both ways, and lands on your own comment', { timeout: 90000 }, async () => {
  const post = await newPost('Busy post');
  const cs = [];
  for (let i = 1; i <= 60; i++) cs.push(await newComment(post._id, `Busy #${i}`));
  const { page, problems } = await openPost(browser, post._id);
  assert.equal(await page.locator(`#c-${cs[59]._id}`).count(), 1, 'the latest comment is not shown');
  assert.equal(await page.locator(`#c-${cs[9]._id}`).count(), 0, 'an old comment is shown first');
  await Promise.all([page.waitForURL(/before=/), page.click('a:text("← Older comments")')]);
  assert.equal(await page.locator(`#c-${cs[0]._id}`).count(), 1);
  await Promise.all([page.waitForURL(/after=/), page.click('a:text("Newer comments →")')]);
  assert.equal(await page.locator(`#c-${cs[10]._id}`).count(), 1);
  await Promise.all([page.waitForURL(/\/posts\/[0-9a-f]{24}#comments$/), page.click('a:text("Latest comments")')]);
  await waitStatus(page, /^Live/, 10000);
  await page.fill('#comment-text', 'My own comment');
  await Promise.all([page.waitForURL(/\/posts\/[0-9a-f]{24}#c-[0-9a-f]{24}$/), page.click('#comment-form button[type="submit"]')]);
  const anchor = new URL(page.url()).hash;
  const mine = page.locator(anchor);
  assert.equal(await mine.locator('.comment-text').textContent(), 'My own comment');
  assert.ok(await mine.isVisible());
  assert.deepEqual(problems, []);
  await page.close();
});

test('one submit, one comment: a double click at 300 ms latency stores one', { timeout: 60000 }, async () => {
  const post = await newPost('Double click');
  const { page, problems } = await openPost(browser, post._id);
  await page.route(/\/posts\/[0-9a-f]{24}$/, async (route) => {
    if (route.request().method() === 'POST') await sleep(300);
    await route.continue();
  });
  await page.fill('#comment-text', 'Clicked twice');
  const landed = page.waitForURL(/#c-[0-9a-f]{24}$/);
  // Two clicks 150 ms apart, as a person double-clicks a slow button; the
  // second finds the button disabled while the first is sent.
  const disabledAtSecond = await page.evaluate(() => new Promise((resolve) => {
    const b = document.querySelector('#comment-form button[type="submit"]');
    b.click();
    setTimeout(() => { const d = b.disabled; b.click(); resolve(d); }, 150);
  }));
  assert.equal(disabledAtSecond, true, 'the button is not disabled while sending');
  await landed;
  const stored = (await allComments(post._id)).filter((c) => c.text === 'Clicked twice');
  assert.equal(stored.length, 1, `stored ${stored.length} comments`);
  assert.equal(await page.locator(`#c-${stored[0]._id}`).count(), 1, 'not landed on the comment');
  assert.deepEqual(problems, []);
  await page.close();
});

test('two form posts with one token store one comment (no script)', { timeout: 60000 }, async () => {
  const post = await newPost('Two posts, one token');
  const html = await (await fetch(`${sys.web}/posts/${post._id}`)).text();
  const token = /name="token" value="([0-9a-f]{32})"/.exec(html)[1];
  const send = () => fetch(`${sys.web}/posts/${post._id}`, {
    method: 'POST', redirect: 'manual',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded', 'Sec-Fetch-Site': 'same-origin', Origin: sys.web },
    body: new URLSearchParams({ text: 'Sent twice at once', token, after: '' }),
  });
  const answers = await Promise.all([send(), send()]);
  assert.deepEqual(answers.map((a) => a.status), [303, 303]);
  assert.equal(answers[0].headers.get('location'), answers[1].headers.get('location'));
  assert.equal((await allComments(post._id)).length, 1);
});

test('without a token the browser writes, edits and deletes posts, and asks before deleting', { timeout: 60000 }, async () => {
  const page = await browser.newPage();
  const problems = watch(page);
  await page.goto(`${sys.web}/`);
  assert.equal(await page.locator('text=Sign in').count(), 0);
  await page.click('a[href="/posts/new"] >> nth=0');
  await page.fill('#title', 'Written without a token');
  await page.fill('#content', 'Some **bold** text and a link: https://example.org/docs\n\n<script>window.__pwned=1</script>');
  await Promise.all([page.waitForURL(/\/posts\/[0-9a-f]{24}$/), page.click('button:text("Publish")')]);
  assert.equal(await page.locator('h1').textContent(), 'Written without a token');
  assert.equal(await page.locator('.content strong').textContent(), 'bold');
  assert.equal(await page.locator('.content a[href="https://example.org/docs"]').count(), 1, 'the URL is not a link');
  assert.equal(await page.locator('.content script').count(), 0);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  const url = page.url();

  await page.click('a:text("Edit post")');
  await page.fill('#title', 'Edited without a token');
  await Promise.all([page.waitForURL(url), page.click('button:text("Save changes")')]);
  assert.equal(await page.locator('h1').textContent(), 'Edited without a token');

  // Deleting asks first: dismissed, nothing happens; accepted, it is gone.
  await page.goto(url + '/edit');
  const asked = [];
  page.once('dialog', (d) => { asked.push(d.message()); d.dismiss(); });
  await page.click('button:text("Delete post")');
  await sleep(300);
  assert.match(asked[0] || '', /Delete this post/);
  assert.equal((await fetch(`${sys.posts}/posts/${url.split('/').pop()}`)).status, 200, 'deleted without confirmation');
  page.once('dialog', (d) => d.accept());
  await Promise.all([page.waitForURL(`${sys.web}/`), page.click('button:text("Delete post")')]);
  assert.equal((await fetch(`${sys.posts}/posts/${url.split('/').pop()}`)).status, 404);
  assert.deepEqual(problems, []);
  await page.close();
});

test('a 300-character word does not widen the home page', { timeout: 60000 }, async () => {
  await newPost('W'.repeat(300), 'x'.repeat(2000));
  for (const width of [1000, 375]) {
    const page = await browser.newPage({ viewport: { width, height: 800 } });
    await page.setViewportSize({ width, height: 800 });
    await page.goto(`${sys.web}/`);
    const [sw, iw] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    assert.ok(sw <= iw, `home page is ${sw} px wide in a ${iw} px window`);
    await page.close();
  }
});

test('status is honest: reconnecting while the posts service is down, and a deleted post says so', { timeout: 90000 }, async () => {
  const post = await newPost('Honest status');
  await newComment(post._id, 'A comment that goes with the post');
  const { page } = await openPost(browser, post._id);
  await stop('posts');
  await waitStatus(page, /^Reconnecting/);
  start('posts');
  await ready(sys.posts, 'posts');
  await waitStatus(page, /^Live/, 15000);

  await api('DELETE', `${sys.posts}/posts/${post._id}`);
  await page.locator('#post-deleted').waitFor({ state: 'visible', timeout: 5000 });
  assert.match(await page.locator('#post-deleted').textContent(), /This post has been deleted/);
  assert.equal(await page.locator('#post-edited').isVisible(), false, 'the "edited" notice shows for a deletion');
  assert.equal(await page.locator('#comment-list > li').count(), 0, 'the comments of a deleted post still show');
  assert.match(await status(page), /deleted/);
  await page.close();
});

test('times show in the reader\'s time zone, UTC without script', { timeout: 60000 }, async () => {
  const post = await newPost('Time zones');
  await newComment(post._id, 'What time is it?');
  const tokyo = await launch({ timezoneId: 'Asia/Tokyo', locale: 'en-GB' });
  const noScript = await launch({ javaScriptEnabled: false });
  try {
    const page = await tokyo.newPage();
    await page.goto(`${sys.web}/posts/${post._id}`);
    const t = page.locator('.comment time');
    await page.waitForFunction(() => document.querySelector('.comment time').dataset.local === '1');
    const [iso, shown] = await Promise.all([t.getAttribute('datetime'), t.textContent()]);
    const want = await page.evaluate((s) => new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(s)), iso);
    assert.equal(shown, want);
    assert.ok(!shown.includes('UTC'));
    const plain = await noScript.newPage();
    await plain.goto(`${sys.web}/posts/${post._id}`);
    assert.match(await plain.locator('.comment time').textContent(), /UTC$/);
  } finally {
    await tokyo.close();
    await noScript.close();
  }
});

test('limits count characters: 10,000 Chinese characters fit, one emoji more does not', { timeout: 60000 }, async () => {
  const post = await newPost('Limits');
  const { page } = await openPost(browser, post._id);
  await page.fill('#comment-text', '字'.repeat(10000));
  assert.equal(await page.locator('#comment-text').evaluate((e) => e.checkValidity()), true);
  assert.match(await page.locator('#comment-text-count').textContent(), /^0 characters left/);
  await Promise.all([page.waitForURL(/#c-[0-9a-f]{24}$/), page.click('#comment-form button[type="submit"]')]);
  assert.equal((await allComments(post._id))[0].text.length, 10000);
  await page.fill('#comment-text', '😀'.repeat(10001));
  assert.equal(await page.locator('#comment-text').evaluate((e) => e.checkValidity()), false);
  assert.match(await page.locator('#comment-text-count').textContent(), /^1 characters too many/);
  await page.close();
});
