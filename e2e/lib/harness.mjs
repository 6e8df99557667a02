// The e2e harness: a real `signoff serve` process on a loopback port over a fresh SQLite file,
// and Debian's Chromium driven by playwright-core. Every scenario saves a screenshot of each
// open page when it fails (e2e/artifacts/).

import { spawn, execFileSync } from 'node:child_process';
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, after } from 'node:test';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const root = join(here, '..', '..');
export const artifacts = join(root, 'e2e', 'artifacts');
export const PASSWORD = 'correct horse battery staple';

const binary = process.env.SIGNOFF_BIN || join(root, 'target', 'debug', 'signoff');
const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic',
  '--no-first-run', '--disable-component-update', '--disable-sync'];

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** Starts signoff; `env` adds SIGNOFF_* settings. */
export async function startServer(env = {}) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'signoff-e2e-'));
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(binary, ['serve'], {
    env: {
      ...process.env,
      SIGNOFF_LISTEN: `127.0.0.1:${port}`,
      SIGNOFF_PUBLIC_URL: base,
      SIGNOFF_DATABASE_URL: `sqlite://${join(dir, 'e2e.db')}`,
      // The development inbox (/dev/mail) reads the mail from here.
      SIGNOFF_MAIL_DIR: join(dir, 'mail'),
      SIGNOFF_LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr.on('data', (d) => { log += d; });
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const res = await fetch(`${base}/readyz`);
      if (res.ok) break;
    } catch { /* not up yet */ }
    if (child.exitCode !== null) throw new Error(`signoff exited: ${log}`);
    if (Date.now() > deadline) throw new Error(`signoff did not start: ${log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    base,
    port,
    database: join(dir, 'e2e.db'),
    log: () => log,
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Starts `count` signoff nodes on one new PostgreSQL database (SIGNOFF_TEST_POSTGRES_URL's
 * server; the database is dropped by `stop`) behind a proxy on loopback that sends each request
 * to the next node in turn, so one browser's requests, and the relying parties' calls, land on
 * every node. The proxy's URL is the public URL of all of them. */
export async function startNodes(count, env = {}) {
  const admin = process.env.SIGNOFF_TEST_POSTGRES_URL;
  if (!admin) throw new Error('SIGNOFF_TEST_POSTGRES_URL is not set: the several-node scenarios need a PostgreSQL server');
  const name = `signoff_e2e_${randomBytes(6).toString('hex')}`;
  execFileSync('psql', [admin, '-qc', `CREATE DATABASE ${name}`], { stdio: 'pipe' });
  const url = new URL(admin);
  url.pathname = `/${name}`;
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const nodes = [];
  try {
    for (let i = 0; i < count; i++) {
      nodes.push(await startServer({ SIGNOFF_DATABASE_URL: url.href, SIGNOFF_PUBLIC_URL: base, ...env }));
    }
  } catch (e) {
    for (const n of nodes) await n.stop();
    execFileSync('psql', [admin, '-qc', `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`], { stdio: 'pipe' });
    throw e;
  }
  let next = 0;
  const served = nodes.map(() => 0);
  const proxy = createHttpServer((req, res) => {
    const i = next++ % nodes.length;
    served[i] += 1;
    const upstream = httpRequest(
      { host: '127.0.0.1', port: nodes[i].port, method: req.method, path: req.url, headers: req.headers, agent: false },
      (answer) => {
        res.writeHead(answer.statusCode, answer.rawHeaders);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => { if (!res.headersSent) res.writeHead(502); res.end(); });
    req.pipe(upstream);
  });
  await new Promise((r) => proxy.listen(port, '127.0.0.1', r));
  return {
    base,
    port,
    nodes,
    /** How many requests each node was sent. */
    served: () => [...served],
    async stop() {
      proxy.closeAllConnections();
      await new Promise((r) => proxy.close(r));
      for (const n of nodes) await n.stop();
      execFileSync('psql', [admin, '-qc', `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`], { stdio: 'pipe' });
    },
  };
}

/** Launches Chromium; `bfcache: true` removes Playwright's default --disable-back-forward-cache. */
export function launch({ bfcache = false } = {}) {
  return chromium.launch({
    executablePath: chromiumPath,
    args: FLAGS,
    ...(bfcache ? { ignoreDefaultArgs: ['--disable-back-forward-cache'] } : {}),
  });
}

export async function register(server, email) {
  const res = await fetch(`${server.base}/auth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ email, password: PASSWORD }),
  });
  if (res.status !== 201) throw new Error(`register ${email}: ${res.status}`);
}

/** Signs in through the demo's form, as a person would. */
export async function signIn(page, server, email, { remember = false } = {}) {
  await page.goto(`${server.base}/login`);
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', PASSWORD);
  if (remember) await page.check('input[name=remember_me]');
  await Promise.all([page.waitForURL(`${server.base}/app`), page.click('form[action="/auth/login"] button[type=submit]')]);
}

/** One server and one browser shared by a test file's scenarios, stopped after them.
 * Returns an object whose `server` and `browser` are set once `before` has run. */
export function suite(env = {}, options = {}) {
  const ctx = { server: null, browser: null };
  before(async () => {
    ctx.server = await startServer(env);
    ctx.browser = await launch(options);
  });
  after(async () => {
    await ctx.browser?.close();
    await ctx.server?.stop();
  });
  return ctx;
}

let shot = 0;
/** Runs `body(t)` and, if it throws, saves a screenshot of every open page first. */
export async function scenario(name, browsers, body) {
  try {
    await body();
  } catch (e) {
    mkdirSync(artifacts, { recursive: true });
    for (const b of browsers()) {
      for (const ctx of b.contexts()) {
        for (const page of ctx.pages()) {
          const file = join(artifacts, `${name.replace(/\W+/g, '-')}-${++shot}.png`);
          await page.screenshot({ path: file, fullPage: true }).catch(() => {});
          console.error(`screenshot: ${file} (${page.url()})`);
        }
      }
    }
    throw e;
  }
}

export const sessionCookieName = '__Host-signoff_session';
