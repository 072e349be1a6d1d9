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
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { chromium } from 'playwright-core';

const BIN = process.env.BLOG_BIN;
if (!BIN) throw new Error('set BLOG_BIN to the path of the built blog binary');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sys = { posts: '', comments: '', web: '', evil: '', dir: '', proc: null, out: [], evilServer: null, context: null };
const log = () => Buffer.concat(sys.out).toString();

async function ready(base) {
  const deadline = Date.now() + 20000;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(base + '/readyz')).ok) return;
    } catch {}
    if (sys.proc.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`blog serve not ready at ${base} within 20 s:\n${log()}`);
}

async function getJSON(url) {
  const res = await fetch(url);
  assert.equal(res.status, 200, `GET ${url}`);
  return res.json();
}

before(async () => {
  sys.dir = mkdtempSync(join(tmpdir(), 'blog-e2e-crosssite-'));
  const [pp, cp, wp, ep] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  sys.posts = `http://127.0.0.1:${pp}`;
  sys.comments = `http://127.0.0.1:${cp}`;
  sys.web = `http://127.0.0.1:${wp}`;
  // The attacker's origin: "localhost" is another site than 127.0.0.1.
  sys.evil = `http://localhost:${ep}`;
  sys.proc = spawn(BIN, ['serve'], {
    env: {
      PATH: process.env.PATH, HOME: process.env.HOME, HOST: '127.0.0.1',
      PORT: String(pp), COMMENTS_PORT: String(cp), WEB_PORT: String(wp),
      BLOG_DATA_DIR: join(sys.dir, 'data'), LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  sys.proc.stdout.on('data', (b) => sys.out.push(b));
  sys.proc.stderr.on('data', (b) => sys.out.push(b));
  sys.evilServer = createServer((req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>another site</title><p>nothing to see</p>');
  });
  await new Promise((r) => sys.evilServer.listen(ep, '127.0.0.1', r));
  await Promise.all([ready(sys.posts), ready(sys.comments), ready(sys.web)]);
  sys.context = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), 'blog-e2e-profile-')), {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await sys.context?.close();
  sys.evilServer?.close();
  if (sys.proc && sys.proc.exitCode === null) {
    sys.proc.kill('SIGTERM');
    const timer = setTimeout(() => sys.proc.kill('SIGKILL'), 10000);
    await new Promise((r) => sys.proc.on('exit', r));
    clearTimeout(timer);
  }
  rmSync(sys.dir, { recursive: true, force: true });
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
