// Cross-site writes (issue 11, finding 5), in a real browser: a page on
// another origin sends bodies to the APIs the ways a browser allows without
// a CORS preflight (fetch with mode "no-cors" and a Blob body,
// navigator.sendBeacon), against `blog serve` with its defaults (no API
// token). None may store anything; the web front end's own form still
// works.
//
//   BLOG_BIN=/path/to/blog npm test          (from web/e2e, after npm ci)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { freePort, tempDir, removeTempDirs, spawnBlog, waitReady, launch } from './harness.mjs';

const sys = { posts: '', comments: '', web: '', evil: '', proc: null, evilServer: null, context: null };
const ready = (base) => waitReady(base, 'blog serve', sys.proc.alive, sys.proc.log);

async function getJSON(url) {
  const res = await fetch(url);
  assert.equal(res.status, 200, `GET ${url}`);
  return res.json();
}

before(async () => {
  const dir = tempDir('blog-e2e-crosssite-');
  const [pp, cp, wp, ep] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  sys.posts = `http://127.0.0.1:${pp}`;
  sys.comments = `http://127.0.0.1:${cp}`;
  sys.web = `http://127.0.0.1:${wp}`;
  // The attacker's origin: "localhost" is another site than 127.0.0.1.
  sys.evil = `http://localhost:${ep}`;
  sys.proc = spawnBlog(['serve'], {
    PATH: process.env.PATH, HOME: process.env.HOME, HOST: '127.0.0.1',
    PORT: String(pp), COMMENTS_PORT: String(cp), WEB_PORT: String(wp),
    BLOG_DATA_DIR: join(dir, 'data'), LOG_LEVEL: 'warn',
  });
  sys.evilServer = createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>another site</title><p>nothing to see</p>');
  });
  await new Promise((r) => sys.evilServer.listen(ep, '127.0.0.1', r));
  await Promise.all([ready(sys.posts), ready(sys.comments), ready(sys.web)]);
  sys.context = await launch();
});

after(async () => {
  await sys.context?.close();
  sys.evilServer?.close();
  if (sys.proc?.alive()) {
    sys.proc.child.kill('SIGTERM');
    const timer = setTimeout(() => sys.proc.child.kill('SIGKILL'), 10000);
    await sys.proc.exited;
    clearTimeout(timer);
  }
  removeTempDirs();
});

test('a page on another origin stores nothing through no-cors fetch or sendBeacon', { timeout: 60000 }, async () => {
  // A post to aim comments at, made the right way.
  const res = await fetch(sys.posts + '/posts', {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ title: 'Target', content: 'aimed at' }),
  });
  assert.equal(res.status, 201);
  const target = await res.json();

  const page = await sys.context.newPage();
  await page.goto(sys.evil + '/');
  // Count the requests that reach the network, so the test knows every
  // attempt was sent before it looks at the store.
  const apiBases = [sys.posts, sys.comments];
  let settled = 0;
  const onDone = (r) => { if (apiBases.some((b) => r.url().startsWith(b))) settled++; };
  page.on('requestfinished', onDone);
  page.on('requestfailed', onDone);

  const attempts = await page.evaluate(async ({ posts, comments, postId }) => {
    const post = JSON.stringify({ title: 'forged post', content: 'cross-site' });
    const comment = JSON.stringify({ postId, text: 'forged comment' });
    let sent = 0;
    const tries = [
      () => fetch(posts + '/posts', { method: 'POST', mode: 'no-cors', body: new Blob([post]) }),
      () => fetch(comments + '/comments', { method: 'POST', mode: 'no-cors', body: new Blob([comment]) }),
      () => fetch(comments + '/comments', { method: 'POST', mode: 'no-cors', body: new Blob([comment], { type: 'text/plain' }) }),
      () => navigator.sendBeacon(posts + '/posts', post),
      () => navigator.sendBeacon(comments + '/comments', comment),
      () => navigator.sendBeacon(comments + '/comments', new Blob([comment])),
    ];
    for (const t of tries) {
      try {
        const r = await t();
        if (r !== false) sent++;
      } catch {}
    }
    return sent;
  }, { posts: sys.posts, comments: sys.comments, postId: target._id });
  assert.ok(attempts >= 5, `only ${attempts} of 6 cross-site requests could be sent`);

  const deadline = Date.now() + 10000;
  while (settled < attempts && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.ok(settled >= attempts, `${settled} of ${attempts} requests reached the APIs within 10 s`);

  const posts = await getJSON(sys.posts + '/posts');
  assert.deepEqual(posts.map((p) => p.title), ['Target'], 'a cross-site request stored a post');
  const comments = await getJSON(`${sys.comments}/comments/${target._id}`);
  assert.deepEqual(comments, [], 'a cross-site request stored a comment');
  await page.close();
});

test("the web front end's own comment form still works", { timeout: 60000 }, async () => {
  const posts = await getJSON(sys.posts + '/posts');
  const target = posts.find((p) => p.title === 'Target');
  const page = await sys.context.newPage();
  await page.goto(`${sys.web}/posts/${target._id}`);
  await page.fill('#comment-text', 'sent from the form');
  await Promise.all([page.waitForURL(/#c-[0-9a-f]{24}$/), page.click('#comment-form button[type="submit"]')]);
  const comments = await getJSON(`${sys.comments}/comments/${target._id}`);
  assert.deepEqual(comments.map((c) => c.text), ['sent from the form']);
  await page.close();
});
