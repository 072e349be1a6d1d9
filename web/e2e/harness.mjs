// The browser tests' shared harness: the real blog binary run as processes
// on free loopback ports over a temp data directory, and Debian's Chromium
// with a fresh profile. Each test file runs in a process of its own
// (node --test), so the one system here is that file's.
//
//   BLOG_BIN  the built blog binary (required)
//   CHROMIUM  the browser (default /usr/bin/chromium)
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';
import { chromium } from 'playwright-core';

export const BIN = process.env.BLOG_BIN;
if (!BIN) throw new Error('set BLOG_BIN to the path of the built blog binary');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const dirs = [];

// tempDir makes a directory that removeTempDirs deletes.
export function tempDir(prefix) {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

export function removeTempDirs() {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

// freePort returns a loopback port nothing listens on now.
export function freePort() {
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

// waitReady polls base/readyz until it answers 200, for at most 20 s, and
// gives up early once alive() says the process has exited.
export async function waitReady(base, what, alive, log) {
  const deadline = Date.now() + 20000;
  while (Date.now() < deadline) {
    try {
      if ((await fetch(base + '/readyz')).ok) return;
    } catch {}
    if (!alive()) break;
    await sleep(50);
  }
  throw new Error(`${what} not ready at ${base} within 20 s:\n${log()}`);
}

// spawnBlog starts `blog args...` with env, collecting its output.
export function spawnBlog(args, env) {
  const child = spawn(BIN, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = [];
  child.stdout.on('data', (b) => out.push(b));
  child.stderr.on('data', (b) => out.push(b));
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  return { child, exited, alive: () => child.exitCode === null, log: () => Buffer.concat(out).toString() };
}

// The system under test: blog comments, blog posts and blog web as three
// processes over one embedded store, as in production.
export const sys = { procs: {}, env: {}, posts: '', comments: '', web: '' };

export function start(name) {
  const p = { name, ...spawnBlog([name], sys.env) };
  sys.procs[name] = p;
  return p;
}

// stop ends a service with SIGTERM (SIGKILL after 10 s) and asserts that it
// exited cleanly.
export async function stop(name) {
  const p = sys.procs[name];
  if (!p || p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill('SIGTERM');
  const timer = setTimeout(() => p.child.kill('SIGKILL'), 10000);
  const { code } = await p.exited;
  clearTimeout(timer);
  assert.equal(code, 0, `blog ${name} did not exit cleanly:\n${p.log()}`);
}

export function ready(base, name) {
  const p = sys.procs[name];
  return waitReady(base, `blog ${name}`, p.alive, p.log);
}

// up starts the three services on free ports with the settings in extra
// (e.g. BLOG_API_TOKEN) and waits until each is ready.
export async function up(extra = {}) {
  const data = tempDir('blog-e2e-data-');
  const [pp, cp, wp] = await Promise.all([freePort(), freePort(), freePort()]);
  sys.posts = `http://127.0.0.1:${pp}`;
  sys.comments = `http://127.0.0.1:${cp}`;
  sys.web = `http://127.0.0.1:${wp}`;
  sys.env = {
    PATH: process.env.PATH, HOME: process.env.HOME, HOST: '127.0.0.1',
    PORT: String(pp), COMMENTS_PORT: String(cp), WEB_PORT: String(wp),
    POSTS_URL: sys.posts, COMMENTS_URL: sys.comments,
    BLOG_DATA_DIR: data, BLOG_COMMENT_RATE: '0', LOG_LEVEL: 'warn',
    ...extra,
  };
  start('comments');
  start('posts');
  start('web');
  await Promise.all([ready(sys.comments, 'comments'), ready(sys.posts, 'posts'), ready(sys.web, 'web')]);
}

// down stops the services (each must exit cleanly) and removes the temp
// directories.
export async function down() {
  for (const name of ['web', 'posts', 'comments']) await stop(name);
  removeTempDirs();
}

// launch starts Chromium with a fresh profile and the flags this machine's
// closed network needs; options are playwright's (viewport, colorScheme,
// javaScriptEnabled, timezoneId, ...).
export function launch(options = {}) {
  return chromium.launchPersistentContext(tempDir('blog-e2e-profile-'), {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
    viewport: { width: 1000, height: 900 },
    ...options,
  });
}
