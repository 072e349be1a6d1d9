// Browser tests of the web front end: Debian's Chromium driven by
// playwright-core, against the real binary run as three processes (blog
// posts, blog comments, blog web) over one embedded store, as in production.
//
//   BLOG_BIN=/path/to/blog npm test          (from web/e2e, after npm ci)
//
// CHROMIUM overrides the browser (default /usr/bin/chromium); SCREENSHOT=path
// also saves a screenshot of a post page there (for the README).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { sys, start, stop, ready, up, down, launch, sleep } from './harness.mjs';

const TOKEN = 'e2e-' + Math.random().toString(36).slice(2);
const LIVE_WITHIN_MS = 2000;

async function api(method, url, body) {
  const res = await fetch(url, {
    method,
    headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + TOKEN },
    body: body && JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

const newPost = (title, content = 'A post for the browser tests.\n\nSecond paragraph.') =>
  api('POST', sys.posts + '/posts', { title, content });
const newComment = (postId, text) => api('POST', sys.comments + '/comments', { postId, text });

// watch records what must never happen on a page: script errors, dialogs
// (an XSS payload's alert), CSP violations.
function watch(page) {
  const problems = [];
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('dialog', (d) => {
    problems.push('dialog: ' + d.message());
    d.dismiss().catch(() => {});
  });
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) problems.push('console: ' + m.text());
  });
  return problems;
}

async function openPost(context, id) {
  const page = await context.newPage();
  const problems = watch(page);
  await page.goto(`${sys.web}/posts/${id}`);
  await waitLive(page);
  return { page, problems };
}

async function waitLive(page, timeout = 10000) {
  await page.waitForFunction(() => document.getElementById('live-status').textContent.startsWith('Live'), null, { timeout });
}

// submit types a comment into a page's form and sends it. The page comes
// to the front first, as when a person switches tabs (a background tab's
// rendering is throttled, which would slow the click, not the update).
async function submit(page, text) {
  await page.bringToFront();
  await page.fill('#comment-text', text);
  await Promise.all([page.waitForURL(/#c-[0-9a-f]{24}$/), page.click('#comment-form button[type="submit"]')]);
}

// sendAndSee submits text in one page and returns how long after the click
// the other page showed it, failing past LIVE_WITHIN_MS.
async function sendAndSee(from, to, text) {
  await from.bringToFront();
  const t0 = Date.now();
  let took = -1;
  const shown = commentLocator(to, text).waitFor({ timeout: LIVE_WITHIN_MS }).then(() => { took = Date.now() - t0; });
  await Promise.all([submit(from, text), shown]);
  assert.ok(took >= 0 && took < LIVE_WITHIN_MS, `took ${took} ms`);
  return took;
}

const commentLocator = (page, text) =>
  page.locator('#comment-list .comment-text').filter({ hasText: text });

async function exactlyOnce(page, text) {
  const n = await page.locator('#comment-list .comment-text').evaluateAll(
    (els, t) => els.filter((e) => e.textContent === t).length, text);
  assert.equal(n, 1, `"${text}" is shown ${n} times`);
}

let browser;

before(async () => {
  await up({ BLOG_API_TOKEN: TOKEN });
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await down();
});

test('a comment sent in one tab appears in the other within 2 s, without a reload', { timeout: 60000 }, async () => {
  const post = await newPost('Two tabs');
  const a = await openPost(browser, post._id);
  const b = await openPost(browser, post._id);
  let reloads = 0;
  b.page.on('framenavigated', (f) => { if (f === b.page.mainFrame()) reloads++; });

  const text = 'Hello from tab A ' + Date.now();
  const took = await sendAndSee(a.page, b.page, text);
  console.log(`# submit in tab A -> shown in tab B: ${took} ms`);
  assert.equal(reloads, 0, 'tab B navigated');
  assert.equal(await b.page.locator('#comment-count').textContent(), '1');

  // Tab A has it from its redirect and again from the stream: shown once.
  await sleep(500);
  await exactlyOnce(a.page, text);
  await exactlyOnce(b.page, text);
  assert.deepEqual([...a.problems, ...b.problems], []);
  await a.page.close();
  await b.page.close();
});

test('hostile comments show as text and run nothing', { timeout: 60000 }, async () => {
  const post = await newPost('Hostile input');
  const a = await openPost(browser, post._id);
  const b = await openPost(browser, post._id);
  const payloads = [
    `<img src=x onerror="window.__pwned='img';alert('img')">`,
    `<script>window.__pwned='script';alert('script')</script>`,
    `"><svg onload="window.__pwned='svg'"></svg><a href="javascript:alert(1)">x</a>`,
  ];
  for (const text of payloads) await sendAndSee(a.page, b.page, text);
  await sleep(500);
  for (const { page } of [a, b]) {
    for (const text of payloads) await exactlyOnce(page, text);
    assert.equal(await page.evaluate(() => window.__pwned), undefined, 'a payload ran');
    assert.equal(await page.locator('#comment-list img, #comment-list script, #comment-list svg, #comment-list .comment-text a').count(), 0,
      'a payload became markup');
  }
  assert.deepEqual([...a.problems, ...b.problems], []);
  await a.page.close();
  await b.page.close();
});

test('edits and deletes show up live', { timeout: 60000 }, async () => {
  const post = await newPost('Edits and deletes');
  const keep = await newComment(post._id, 'This one stays');
  const c = await newComment(post._id, 'Before the edit');
  const b = await openPost(browser, post._id);
  await commentLocator(b.page, 'Before the edit').waitFor();

  await api('PATCH', `${sys.comments}/comments/${c._id}`, { text: 'After the edit' });
  await commentLocator(b.page, 'After the edit').waitFor({ timeout: LIVE_WITHIN_MS });
  assert.equal(await b.page.locator(`#c-${c._id} .edited`).isVisible(), true, 'no "edited" mark');

  await api('DELETE', `${sys.comments}/comments/${c._id}`);
  await b.page.locator(`#c-${c._id}`).waitFor({ state: 'detached', timeout: LIVE_WITHIN_MS });
  await b.page.waitForFunction(() => document.getElementById('comment-count').textContent === '1', null, { timeout: LIVE_WITHIN_MS });
  await exactlyOnce(b.page, keep.text);
  assert.deepEqual(b.problems, []);
  await b.page.close();
});

test('the page keeps updating after the posts service restarts', { timeout: 90000 }, async () => {
  const post = await newPost('Restarts');
  const a = await openPost(browser, post._id);
  const b = await openPost(browser, post._id);
  let reloads = 0;
  b.page.on('framenavigated', (f) => { if (f === b.page.mainFrame()) reloads++; });
  await sendAndSee(a.page, b.page, 'Before the restart');

  await stop('posts');
  // Written while the posts service is down: it reaches the page once the
  // service is back, through the same relayed connection.
  await newComment(post._id, 'While posts was down');
  start('posts');
  await ready(sys.posts, 'posts');
  await commentLocator(b.page, 'While posts was down').waitFor({ timeout: 15000 });
  await waitLive(b.page);

  const took = await sendAndSee(a.page, b.page, 'After the restart');
  console.log(`# after a posts restart, submit in tab A -> shown in tab B: ${took} ms`);
  for (const text of ['Before the restart', 'While posts was down', 'After the restart']) await exactlyOnce(b.page, text);
  assert.equal(reloads, 0, 'tab B navigated');
  assert.deepEqual(b.problems.filter((p) => !/EventSource|events/.test(p)), []);
  await a.page.close();
  await b.page.close();
});

test('reading and commenting work without JavaScript', { timeout: 60000 }, async () => {
  const post = await newPost('No script');
  const context = await launch({ javaScriptEnabled: false });
  try {
    const page = await context.newPage();
    await page.goto(`${sys.web}/posts/${post._id}`);
    assert.equal(await page.locator('h1').textContent(), 'No script');

    // A blank comment is refused in the form, and what was typed stays.
    await page.fill('#comment-text', '   ');
    const [res] = await Promise.all([page.waitForResponse((r) => r.request().method() === 'POST'), page.click('#comment-form button[type="submit"]')]);
    assert.equal(res.status(), 422);
    assert.match(await page.locator('#comment-error').textContent(), /must not be blank/);

    await page.fill('#comment-text', 'Posted without a script');
    await Promise.all([page.waitForURL(/#c-[0-9a-f]{24}$/), page.click('#comment-form button[type="submit"]')]);
    await exactlyOnce(page, 'Posted without a script');
  } finally {
    await context.close();
  }
});

test('an author signs in and publishes a post', { timeout: 60000 }, async () => {
  const page = await browser.newPage();
  const problems = watch(page);
  await page.goto(`${sys.web}/posts/new`);
  assert.match(page.url(), /\/login\?next=/);
  await page.fill('#token', TOKEN);
  await Promise.all([page.waitForURL(/\/posts\/new$/), page.click('button[type="submit"]:text("Sign in")')]);
  await page.fill('#title', 'Written in the browser');
  await page.fill('#content', 'First paragraph.\n\nSecond paragraph.');
  await Promise.all([page.waitForURL(/\/posts\/[0-9a-f]{24}$/), page.click('button:text("Publish")')]);
  assert.equal(await page.locator('h1').textContent(), 'Written in the browser');
  assert.equal(await page.locator('.content p').count(), 2);
  assert.ok(!(await page.content()).includes(TOKEN), 'the token is in the page');
  assert.deepEqual(problems, []);
  await page.close();
});

test('screenshot for the README', { timeout: 60000, skip: !process.env.SCREENSHOT }, async () => {
  const post = await newPost('Live comments, without a reload',
    'This blog is two small services. The posts service keeps each post with its latest comments; the comments service owns the comments. A change stream keeps them in step.\n\n' +
    'Open this page in two windows and write a comment in one: it appears in the other at once.');
  await newComment(post._id, 'Just tried it with two windows side by side. The comment showed up before I could switch.');
  await newComment(post._id, 'What happens if the posts service restarts?\nDoes the page notice?');
  await newComment(post._id, 'It reconnects with Last-Event-ID and catches up: nothing lost, nothing twice.');
  // A reader's view: a fresh profile, not signed in.
  const context = await launch();
  try {
    const { page } = await openPost(context, post._id);
    await page.fill('#comment-text', 'Nice write-up!');
    await page.locator('#comment-text').blur();
    await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  } finally {
    await context.close();
  }
});
