// signoff-browser and its React binding, installed as a user would: `npm pack` of
// clients/browser installed into the README's example app (React with TanStack Query, SWR,
// and token mode), bundled with esbuild, and served by nginx on one origin with signoff.
// Driven in Chromium: the app shows the user from a cached query; a session ended anywhere
// (another device, another tab, the hook's own logout) leaves it signed out within a second or
// two, with its query cache empty and the user's data gone from the page's JavaScript heap.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { chmodSync, cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, launch, register, root, scenario, startServer, PASSWORD } from '../lib/harness.mjs';

const t = { server: null, browser: null, nginx: null, base: null, dir: null, tarball: null, app: null };

function run(cmd, args, cwd) {
  return execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

/** The example app in a folder of its own: its locked dependencies, then signoff-browser from
 * the packed tarball, then one bundle. */
function buildApp(dir) {
  const app = join(dir, 'app');
  mkdirSync(app);
  for (const f of ['package.json', 'package-lock.json', 'index.html', 'src']) {
    cpSync(join(root, 'e2e', 'apps', 'react', f), join(app, f), { recursive: true });
  }
  const packed = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', dir], join(root, 'clients', 'browser')));
  t.tarball = join(dir, packed[0].filename);
  run('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], app);
  run('npm', ['install', '--no-save', '--no-audit', '--no-fund', '--loglevel=error', t.tarball], app);
  const www = join(dir, 'www');
  mkdirSync(www);
  cpSync(join(app, 'index.html'), join(www, 'index.html'));
  // A production bundle, and a development one at /dev.html, where React's StrictMode runs
  // every effect twice (the provider registers, unregisters and registers again).
  for (const [mode, out] of [['production', 'app.js'], ['development', 'app-dev.js']]) {
    run(join(app, 'node_modules', '.bin', 'esbuild'), [
      'src/main.jsx', '--bundle', '--format=esm', '--jsx=automatic', '--log-level=warning',
      `--define:process.env.NODE_ENV="${mode}"`, `--outfile=${join(www, out)}`,
    ], app);
  }
  writeFileSync(join(www, 'dev.html'), readFileSync(join(app, 'index.html'), 'utf8').replace('/app.js', '/app-dev.js'));
  t.app = app;
  return { app, www };
}

// nginx: the app's files at / and signoff's pages and API on the same origin.
function nginxConf(dir, www, port, signoff) {
  return `worker_processes 1;
error_log ${dir}/nginx-error.log;
pid ${dir}/nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    types { text/html html; text/javascript js; }
    client_body_temp_path ${dir}/tmp;
    proxy_temp_path ${dir}/tmp;
    fastcgi_temp_path ${dir}/tmp;
    uwsgi_temp_path ${dir}/tmp;
    scgi_temp_path ${dir}/tmp;
    server {
        listen 127.0.0.1:${port};
        root ${www};
        location ~ ^/(auth/|oidc/|api/me$|login$|register$|signoff\\.js$|demo\\.(css|js)$|favicon\\.(svg|ico)$) {
            proxy_pass http://127.0.0.1:${signoff};
            proxy_http_version 1.1;
            proxy_buffering off;
            proxy_read_timeout 1h;
        }
        location / {
            try_files $uri /index.html;
            add_header Cache-Control no-store;
        }
    }
}
`;
}

before(async () => {
  t.dir = mkdtempSync(join(tmpdir(), 'signoff-react-'));
  // nginx's workers (nobody, when it is started as root) read the app's files.
  chmodSync(t.dir, 0o755);
  const { www } = buildApp(t.dir);
  const port = await freePort();
  t.base = `http://127.0.0.1:${port}`;
  t.server = await startServer({ SIGNOFF_PUBLIC_URL: t.base });
  mkdirSync(join(t.dir, 'tmp'));
  const conf = join(t.dir, 'nginx.conf');
  writeFileSync(conf, nginxConf(t.dir, www, port, t.server.port));
  t.nginx = spawn('nginx', ['-p', t.dir, '-c', conf, '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  t.nginx.stderr.on('data', (d) => { err += d; });
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      if ((await fetch(`${t.base}/signoff.js`)).ok) break;
    } catch { /* not up yet */ }
    if (t.nginx.exitCode !== null || Date.now() > deadline) throw new Error(`nginx did not start: ${err}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  t.browser = await launch();
});

after(async () => {
  await t.browser?.close();
  if (t.nginx && t.nginx.exitCode === null) {
    t.nginx.kill('SIGQUIT');
    await new Promise((r) => t.nginx.once('exit', r));
  }
  await t.server?.stop();
  if (t.dir) rmSync(t.dir, { recursive: true, force: true });
});

/** Signs in on signoff's page, as a person would, then opens the example `app` (from `page`:
 * `/`, the production bundle, or `/dev.html`, the development one). */
async function openSignedIn(ctx, email, app, at = '/') {
  const page = await ctx.newPage();
  await page.goto(`${t.base}/login`);
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', PASSWORD);
  await Promise.all([page.waitForNavigation(), page.click('form[action="/auth/login"] button[type=submit]')]);
  await page.goto(`${t.base}${at}?app=${app}`);
  await shows(page, `Your data: ${email}`);
  return page;
}

/** Waits for the page to show `text`. (Not with a Playwright text locator: its regular
 * expressions would leave the user's address in the page's RegExp statics, where the heap
 * probe below would find it.) */
function shows(page, text, timeout = 10_000) {
  return page.waitForFunction((t) => document.body.innerText.includes(t), text, { timeout });
}

/** Another device: a session of its own, ended with "log out everywhere" (by the API, as a
 * phone would). Resolves when signoff has answered. */
async function logoutEverywhereElsewhere(email) {
  const headers = { 'content-type': 'application/json', accept: 'application/json', origin: t.base };
  const login = await fetch(`${t.base}/auth/login`, { method: 'POST', headers, body: JSON.stringify({ email, password: PASSWORD }) });
  assert.equal(login.status, 200);
  const cookie = login.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
  const { csrf_token: csrf } = await login.json();
  const out = await fetch(`${t.base}/auth/logout`, {
    method: 'POST', headers: { ...headers, cookie, 'x-csrf-token': csrf }, body: JSON.stringify({ scope: 'global' }),
  });
  assert.equal(out.status, 200, await out.text());
}

async function sessionLives(cookie) {
  const res = await fetch(`${t.base}/auth/session`, { headers: { cookie: `${cookie.name}=${cookie.value}`, accept: 'application/json' } });
  return res.status === 200;
}

/** Strings of the page's JavaScript heap (after a full collection) that contain `needle` and
 * that the page's own code could still reach. Left out: a string whose only holder is the
 * last-match record of a regular expression run in a V8 context that is not the page's (Blink's
 * own, which checks <input type=email> fields, keeps the last address it checked; no script of
 * the page can read it). */
async function heapStrings(page, needle) {
  const cdp = await page.context().newCDPSession(page);
  const chunks = [];
  cdp.on('HeapProfiler.addHeapSnapshotChunk', (e) => chunks.push(e.chunk));
  await cdp.send('HeapProfiler.enable');
  await cdp.send('HeapProfiler.collectGarbage');
  await cdp.send('HeapProfiler.takeHeapSnapshot', { reportProgress: false, captureNumericValue: false });
  await cdp.detach();
  const { snapshot: { meta }, nodes, edges, strings } = JSON.parse(chunks.join(''));
  const [NF, EF] = [meta.node_fields.length, meta.edge_fields.length];
  const [nType, nName, nEdges] = ['type', 'name', 'edge_count'].map((f) => meta.node_fields.indexOf(f));
  const [eType, eTo] = ['type', 'to_node'].map((f) => meta.edge_fields.indexOf(f));
  const weak = meta.edge_types[0].indexOf('weak');
  const types = meta.node_types[0];
  const name = (n) => strings[nodes[n + nName]];
  const held = new Set();
  for (let n = 0; n < nodes.length; n += NF) {
    if (types[nodes[n + nType]].includes('string') && name(n).includes(needle)) held.add(n);
  }
  // Who holds what (node offsets), by strong references.
  const holders = new Map();
  for (let n = 0, e = 0; n < nodes.length; n += NF) {
    for (let k = 0; k < nodes[n + nEdges]; k++, e += EF) {
      if (edges[e + eType] === weak) continue;
      const to = edges[e + eTo];
      if (!holders.has(to)) holders.set(to, []);
      holders.get(to).push(n);
    }
  }
  const foreignMatch = (h) => name(h) === 'system / RegExpMatchInfo' &&
    (holders.get(h) ?? []).every((c) => name(c) === 'system / NativeContext');
  // Each string found with a chain of its holders (up to six, each step a holder not seen yet,
  // not a foreign match where there is another), so a failure says what kept it.
  const chain = (n) => {
    const names = [];
    for (let at = n, seen = new Set([n]); names.length < 6;) {
      const by = (holders.get(at) ?? []).filter((h) => !seen.has(h));
      const next = by.find((h) => !foreignMatch(h)) ?? by[0];
      if (next === undefined) break;
      seen.add(next);
      names.push(`${types[nodes[next + nType]]} ${name(next).slice(0, 60)}`);
      at = next;
    }
    return `${JSON.stringify(name(n).slice(0, 80))} held by ${names.join(' <- ') || 'nothing'}`;
  };
  return [...held].filter((n) => {
    const by = holders.get(n) ?? [];
    return by.length === 0 || !by.every(foreignMatch);
  }).map(chain);
}

/** Asserts that the page's heap holds no string with `needle` within `ms` of `since` (SWR's own
 * timers keep a request's data for a few seconds after it started, whatever its cache: its
 * loadingTimeout, 3 s, and dedupingInterval, 2 s after the answer). */
async function assertForgotten(page, needle, since, ms = 6000) {
  for (;;) {
    const found = await heapStrings(page, needle);
    if (found.length === 0) return Date.now() - since;
    assert.ok(Date.now() - since < ms, `the user's data is still in the page's memory ${ms} ms after the end: ${found.join('; ')}`);
    await page.waitForTimeout(250);
  }
}

async function queriesHeld(page) {
  return page.evaluate(() => window.example.queryClient.getQueryCache().getAll().length);
}

/** Waits for the signed-out view; resolves with how long it took after `since`. */
async function signedOutWithin(page, since, ms) {
  await shows(page, 'Signed out.', ms);
  return Date.now() - since;
}

test('the served /signoff.js is the packed package\'s signoff.js, byte for byte', async () => {
  const served = Buffer.from(await (await fetch(`${t.base}/signoff.js`)).arrayBuffer());
  const unpacked = join(t.dir, 'unpacked');
  mkdirSync(unpacked);
  run('tar', ['-xzf', t.tarball, '-C', unpacked]);
  const packed = readFileSync(join(unpacked, 'package', 'src', 'signoff.js'));
  assert.ok(served.length > 10_000, `served ${served.length} bytes`);
  assert.ok(served.equals(packed), 'signoff serves a different signoff.js from the one signoff-browser ships');
  const files = readdirSync(join(unpacked, 'package', 'src')).sort();
  assert.deepEqual(files, ['index.d.ts', 'index.js', 'react.d.ts', 'react.js', 'signoff.js']);
});

test('the README\'s examples are the apps tested here, and their types check against the installed package', async () => {
  const readme = readFileSync(join(root, 'clients', 'browser', 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```jsx\n([\s\S]*?)```/g)].map((m) => m[1]);
  const examples = ['QueryApp.jsx', 'SwrApp.jsx', 'TokenApp.jsx'].map((f) => readFileSync(join(root, 'e2e', 'apps', 'react', 'src', f), 'utf8'));
  assert.deepEqual(blocks, examples, 'clients/browser/README.md must show e2e/apps/react/src/{QueryApp,SwrApp,TokenApp}.jsx as they are');
  writeFileSync(join(t.app, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { jsx: 'react-jsx', module: 'ESNext', moduleResolution: 'bundler', target: 'ES2022', strict: true, noEmit: true, skipLibCheck: false, lib: ['ES2022', 'DOM'] },
    files: ['src/check.tsx'],
  }));
  // Not with execFileSync: tsc takes seconds, and an event loop blocked that long misses the
  // server closing an idle keep-alive connection (after SIGNOFF_KEEPALIVE_TIMEOUT_SECONDS), so
  // the next scenario's first request went out on the closed socket ("fetch failed").
  try {
    await promisify(execFile)(process.execPath, [join(t.app, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', t.app], { cwd: t.app });
  } catch (e) {
    assert.fail(`tsc: ${e.stdout}${e.stderr}`);
  }
});

for (const app of ['query', 'swr']) {
  test(`${app}: "sign out everywhere" on another device signs the app out within 2 s, its cache and heap emptied`, () =>
    scenario(`react-${app}-everywhere`, () => [t.browser], async () => {
      const email = `${app}-everywhere-${Date.now()}@example.com`;
      await register(t.server, email);
      const ctx = await t.browser.newContext();
      const page = await openSignedIn(ctx, email, app);
      if (app === 'query') assert.ok((await queriesHeld(page)) >= 1, 'the user query is cached');
      assert.ok((await heapStrings(page, email)).length > 0, 'the probe finds the user in the heap while signed in');
      // The live event stream is open (the provider watches once signed in).
      await page.waitForTimeout(300);
      const started = Date.now();
      await logoutEverywhereElsewhere(email);
      const took = await signedOutWithin(page, started, 2000);
      assert.ok(took <= 2000, `took ${took} ms`);
      if (app === 'query') assert.equal(await queriesHeld(page), 0, 'the query cache is empty');
      const forgot = await assertForgotten(page, email, started);
      console.log(`react ${app}: signed out ${took} ms after "sign out everywhere" on another device; the heap probe found the user gone ${forgot} ms after`);
      // The probe sees what the page's own world holds, a regular expression's last match too.
      await page.evaluate((e) => { window.example.kept = /@/.exec(`${e}`) && null; }, email);
      assert.ok((await heapStrings(page, email)).length > 0, 'the probe finds a match the page\'s own RegExp holds');
      await ctx.close();
    }));

  test(`${app}: logout() from the hook ends the session on the server, and the other tab follows`, () =>
    scenario(`react-${app}-logout`, () => [t.browser], async () => {
      const email = `${app}-logout-${Date.now()}@example.com`;
      await register(t.server, email);
      const ctx = await t.browser.newContext();
      const page = await openSignedIn(ctx, email, app);
      const other = await ctx.newPage();
      await other.goto(`${t.base}/?app=${app}`);
      await shows(other, `Your data: ${email}`);
      const [cookie] = (await ctx.cookies()).filter((c) => c.name.includes('session'));
      assert.ok(await sessionLives(cookie), 'signed in');
      if (app === 'query') {
        // A mutation in flight at the end writes the user's data back when it settles.
        await page.evaluate((e) => {
          const qc = window.example.queryClient;
          qc.getMutationCache().build(qc, {
            mutationFn: () => new Promise((r) => setTimeout(() => r({ email: `${e}` }), 600)),
            onSuccess: (data) => qc.setQueryData(['late'], data),
          }).execute(undefined).catch(() => {});
        }, email);
      }
      const started = Date.now();
      await page.getByRole('button', { name: 'Sign out', exact: true }).click();
      await signedOutWithin(page, started, 5000);
      assert.equal(new URL(page.url()).search, `?app=${app}`, 'the app stays where it is');
      assert.equal(await sessionLives(cookie), false, 'the session is gone on the server');
      const took = await signedOutWithin(other, started, 2000);
      assert.ok(took <= 2000, `the other tab took ${took} ms`);
      if (app === 'query') await page.waitForTimeout(800);
      for (const p of [page, other]) {
        if (app === 'query') assert.equal(await queriesHeld(p), 0, 'the query cache is empty');
        await assertForgotten(p, email, started);
      }
      await ctx.close();
    }));
}

test('StrictMode (a development build, effects run twice): one provider still signs out once, within 2 s, its cache emptied', () =>
  scenario('react-strict', () => [t.browser], async () => {
    const email = `strict-${Date.now()}@example.com`;
    await register(t.server, email);
    const ctx = await t.browser.newContext();
    const page = await openSignedIn(ctx, email, 'query', '/dev.html');
    assert.ok((await queriesHeld(page)) >= 1);
    await page.waitForTimeout(300);
    const ends = [];
    await page.exposeFunction('noteEnd', (reason) => ends.push(reason));
    await page.evaluate(() => window.signoff.onLogout(({ reason }) => window.noteEnd(reason)));
    const started = Date.now();
    await logoutEverywhereElsewhere(email);
    const took = await signedOutWithin(page, started, 2000);
    assert.ok(took <= 2000, `took ${took} ms`);
    assert.equal(await queriesHeld(page), 0, 'the query cache is empty');
    await page.waitForTimeout(500);
    assert.deepEqual(ends, ['logout'], 'one end, run once, whatever StrictMode did to the effects');
    await ctx.close();
  }));

/** Opens the token-mode example and signs in with its own form (signoff.tokens.login). */
async function openTokenApp(ctx, email) {
  const page = await ctx.newPage();
  await page.goto(`${t.base}/?app=tokens`);
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await shows(page, `Your data: ${email}`);
  return page;
}

test('tokens: "sign out everywhere" on another device signs the app out within 2 s (the stream read with the access token)', () =>
  scenario('react-tokens-everywhere', () => [t.browser], async () => {
    const email = `tokens-everywhere-${Date.now()}@example.com`;
    await register(t.server, email);
    const ctx = await t.browser.newContext();
    const page = await openTokenApp(ctx, email);
    assert.equal((await ctx.cookies()).length, 0, 'token mode: no cookie');
    assert.ok((await queriesHeld(page)) >= 1);
    await page.waitForTimeout(300);
    const started = Date.now();
    await logoutEverywhereElsewhere(email);
    await page.locator('form input[name=email]').waitFor({ timeout: 2000 });
    const took = Date.now() - started;
    assert.ok(took <= 2000, `took ${took} ms`);
    assert.equal(await page.evaluate(() => window.signoff.tokens.stored()), false, 'no refresh token kept');
    assert.equal(await queriesHeld(page), 0, 'the query cache is empty');
    const forgot = await assertForgotten(page, email, started);
    console.log(`react tokens: signed out ${took} ms after "sign out everywhere" on another device; the heap probe found the user gone ${forgot} ms after`);
    await ctx.close();
  }));

test('tokens: signed in with signoff.tokens, logout() from the hook ends the tokens on the server and empties the cache', () =>
  scenario('react-tokens', () => [t.browser], async () => {
    const email = `tokens-${Date.now()}@example.com`;
    await register(t.server, email);
    const ctx = await t.browser.newContext();
    const page = await openTokenApp(ctx, email);
    assert.ok((await queriesHeld(page)) >= 1);
    assert.ok((await heapStrings(page, email)).length > 0, 'the probe finds the user in the heap while signed in');
    const access = await page.evaluate(() => window.signoff.tokens.get());
    const bearer = { authorization: `Bearer ${access}` };
    assert.equal((await fetch(`${t.base}/api/me`, { headers: bearer })).status, 200);

    // A reload keeps the sign-in (the refresh token is in IndexedDB), and reads the user again.
    await page.reload();
    await shows(page, `Your data: ${email}`);

    const refresh = await page.evaluate(() => new Promise((resolve, reject) => {
      const open = indexedDB.open('signoff');
      open.onerror = () => reject(open.error);
      open.onsuccess = () => {
        const get = open.result.transaction('kv').objectStore('kv').get('refresh');
        get.onsuccess = () => { open.result.close(); resolve(get.result); };
      };
    }));
    assert.equal(typeof refresh, 'string');
    const started = Date.now();
    await page.getByRole('button', { name: 'Sign out', exact: true }).click();
    await page.locator('form input[name=email]').waitFor();
    assert.equal((await fetch(`${t.base}/api/me`, { headers: bearer })).status, 401, 'the access token is refused');
    const again = await fetch(`${t.base}/auth/token`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ grant_type: 'refresh_token', refresh_token: refresh }),
    });
    assert.equal(again.status, 400, 'the refresh token is refused');
    assert.equal(await page.evaluate(() => window.signoff.tokens.stored()), false, 'no refresh token kept');
    assert.equal(await queriesHeld(page), 0, 'the query cache is empty');
    await assertForgotten(page, email, started);
    await ctx.close();
  }));
