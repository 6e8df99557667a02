// The single sign-on and single logout scenarios with real relying parties, defined once and
// run by tests/relying-parties.test.mjs (one signoff on SQLite) and
// tests/relying-parties-nodes.test.mjs (two signoff nodes on PostgreSQL behind a proxy that
// alternates requests between them).
//
// Single sign-on and single logout with relying parties nobody here wrote: Apache 2.4 with
// Debian's mod_auth_openidc, express-openid-connect from npm (both with back-channel logout) and
// a Flask app on Authlib (sign-in and RP-initiated logout only; Authlib has no back-channel
// logout). Each signs in by the code flow with PKCE S256; the second app signs in without a
// password; logging out at one app, or everywhere from another device, logs the browser out of
// every single-logout app; an app the user never used hears nothing.
//
// Each app has a loopback address of its own (127.0.0.2, .3, …), so each is a site of its own
// to the browser, as apps on their own domains are: signoff's logout answer (Clear-Site-Data)
// cannot touch their cookies, and only a back-channel logout can end their sessions.
import { test as testAt, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { launch, register, signIn, scenario, freePort, PASSWORD, root } from './harness.mjs';
import { startApacheRp } from '../rps/apache.mjs';
import { startExpressRp } from '../rps/express-rp.mjs';

export const ADMIN = 'e2e-admin-key-0123456789abcdef0123456789abcdef';
/** What signoff needs for these scenarios: the admin key, and callbacks to loopback addresses. */
export const ISSUER_ENV = { SIGNOFF_ADMIN_TOKEN: ADMIN, SIGNOFF_ALLOW_PRIVATE_CALLBACKS: 'true' };

/** Defines the scenarios against the signoff `startIssuer()` starts (an object with `base`,
 * the issuer, and `stop()`), prefixing each scenario's name with `label`. */
export function relyingPartyScenarios(label, startIssuer) {
  const ctx = {};
  const test = (name, body) => testAt(`${label}: ${name}`, body);

  async function admin(path, init = {}) {
    const res = await fetch(`${ctx.server.base}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json', ...(init.headers || {}) },
    });
    const body = await res.json().catch(() => null);
    if (!res.ok) throw new Error(`${init.method || 'GET'} ${path}: ${res.status} ${JSON.stringify(body)}`);
    return body;
  }

  const registerClient = (body) => admin('/admin/clients', { method: 'POST', body: JSON.stringify(body) });

  /** The Authlib app, a Python process of its own. */
  async function startAuthlibRp({ issuer, clientId, clientSecret, host, port }) {
    const child = spawn('python3', [join(root, 'e2e', 'rps', 'authlib_rp.py')], {
      env: { ...process.env, RP_ISSUER: issuer, RP_CLIENT_ID: clientId, RP_CLIENT_SECRET: clientSecret, RP_HOST: host, RP_PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const deadline = Date.now() + 15_000;
    while (!out.includes('ready')) {
      if (child.exitCode !== null) throw new Error(`the Authlib app exited: ${out}`);
      if (Date.now() > deadline) throw new Error(`the Authlib app did not start: ${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return {
      base: `http://${host}:${port}`,
      log: () => out,
      async stop() {
        child.kill('SIGTERM');
        await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
      },
    };
  }

  /** Passes requests on to `target` unchanged, after `delayMs` (an app that is slow to answer),
   * and keeps each `logout_token` it saw, so a test can replay what signoff sent. */
  async function startRecorder(host, port, target, tokens, delayMs) {
    const server = createServer(async (req, res) => {
      await new Promise((r) => setTimeout(r, delayMs));
      const chunks = [];
      for await (const c of req) chunks.push(c);
      const body = Buffer.concat(chunks);
      const token = new URLSearchParams(body.toString()).get('logout_token');
      const answer = await fetch(`${target}${req.url}`, { method: req.method, headers: { 'content-type': req.headers['content-type'] ?? '' }, body });
      // Recorded once Apache has answered, so a test that waits for the token finds Apache's
      // session already ended (CI once saw Apache still signed in right after the token came).
      if (token) tokens.push(token);
      res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'text/plain' }).end(Buffer.from(await answer.arrayBuffer()));
    });
    await new Promise((r) => server.listen(port, host, r));
    return { stop: () => new Promise((r) => server.close(r)) };
  }

  /** An app that registered a back-channel logout URL but that nobody signs in to: it records
   * every request it gets. */
  async function startBystander(host, port) {
    const received = [];
    const server = createServer((req, res) => {
      received.push(`${req.method} ${req.url}`);
      res.writeHead(200).end();
    });
    await new Promise((r) => server.listen(port, host, r));
    return { received, stop: () => new Promise((r) => server.close(r)) };
  }

  before(async () => {
    ctx.server = await startIssuer();
    const issuer = ctx.server.base;
    const [apachePort, expressPort, authlibPort, bystanderPort, recorderPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
    const host = { apache: '127.0.0.2', express: '127.0.0.3', authlib: '127.0.0.4', bystander: '127.0.0.5', recorder: '127.0.0.6' };
    const apacheBase = `http://${host.apache}:${apachePort}`;
    const expressBase = `http://${host.express}:${expressPort}`;
    const authlibBase = `http://${host.authlib}:${authlibPort}`;
    const bystanderBase = `http://${host.bystander}:${bystanderPort}`;
    ctx.clients = {
      apache: await registerClient({
        client_name: 'Apache intranet',
        redirect_uris: [`${apacheBase}/private/redirect_uri`],
        post_logout_redirect_uris: [`${apacheBase}/bye.html`],
        // mod_auth_openidc's own back-channel URL, reached through a recorder that passes it on.
        backchannel_logout_uri: `http://${host.recorder}:${recorderPort}/private/redirect_uri?logout=backchannel`,
      }),
      express: await registerClient({
        client_name: 'Express app',
        redirect_uris: [`${expressBase}/callback`],
        post_logout_redirect_uris: [`${expressBase}/bye`],
        backchannel_logout_uri: `${expressBase}/backchannel-logout`,
        frontchannel_logout_uri: `${expressBase}/frontchannel-logout`,
      }),
      authlib: await registerClient({
        client_name: 'Authlib app',
        redirect_uris: [`${authlibBase}/callback`],
        post_logout_redirect_uris: [`${authlibBase}/logged-out`],
        token_endpoint_auth_method: 'client_secret_post',
      }),
      bystander: await registerClient({
        client_name: 'App nobody uses',
        redirect_uris: [`${bystanderBase}/callback`],
        backchannel_logout_uri: `${bystanderBase}/backchannel`,
      }),
    };
    const creds = (c) => ({ issuer, clientId: c.client_id, clientSecret: c.client_secret });
    ctx.apache = await startApacheRp({ ...creds(ctx.clients.apache), host: host.apache, port: apachePort });
    ctx.express = await startExpressRp({ ...creds(ctx.clients.express), host: host.express, port: expressPort });
    ctx.authlib = await startAuthlibRp({ ...creds(ctx.clients.authlib), host: host.authlib, port: authlibPort });
    ctx.bystander = await startBystander(host.bystander, bystanderPort);
    ctx.apacheTokens = [];
    // Apache's back-channel answers take 400 ms: RP-initiated logout's redirect must wait for them.
    ctx.recorder = await startRecorder(host.recorder, recorderPort, ctx.apache.base, ctx.apacheTokens, 400);
    ctx.browser = await launch();
  });

  after(async () => {
    await ctx.browser?.close();
    for (const rp of [ctx.recorder, ctx.apache, ctx.express, ctx.authlib, ctx.bystander]) await rp?.stop();
    await ctx.server?.stop();
  });

  const browsers = () => [ctx.browser];

  /** Where signoff's sign-in page is. */
  const isSignIn = (url) => url.startsWith(`${ctx.server.base}/login`);

  /** Opens `url` of an app that requires sign-in and follows where it leads: `true` when the app's
   * page shows, `false` when the browser was sent to signoff's sign-in page. Fails on anything else. */
  async function reaches(page, url, who = '#who') {
    await page.goto(url);
    await page.waitForURL((u) => isSignIn(u.href) || u.href.startsWith(url), { timeout: 10_000 });
    if (isSignIn(page.url())) return false;
    await page.waitForSelector(who, { timeout: 10_000 });
    return true;
  }

  /** Signs in on signoff's page the browser is on, and waits to be back at `back`. */
  async function enterPassword(page, email, back) {
    assert.ok(isSignIn(page.url()), `expected signoff's sign-in page, at ${page.url()}`);
    await page.fill('input[name=email]', email);
    await page.fill('input[name=password]', PASSWORD);
    await Promise.all([page.waitForURL((u) => u.href.startsWith(back), { timeout: 10_000 }), page.click('form[action="/auth/login"] button[type=submit]')]);
  }

  /** Records every signoff page the browser shows (to prove no password was asked). */
  function signInPagesShown(page) {
    const seen = [];
    page.on('framenavigated', (f) => { if (f === page.mainFrame() && isSignIn(f.url())) seen.push(f.url()); });
    return seen;
  }

  /** Signs in to all three apps: a password once (at Apache), then single sign-on. */
  async function signInEverywhere(page, email) {
    assert.equal(await reaches(page, `${ctx.apache.base}/private/`), false, 'Apache asks signoff first');
    await enterPassword(page, email, `${ctx.apache.base}/private/`);
    await page.waitForSelector('#who');
    const asked = signInPagesShown(page);
    assert.ok(await reaches(page, `${ctx.express.base}/`), 'the Express app signs in without a password');
    assert.match(await page.textContent('#who'), new RegExp(email.replace('.', '\\.')));
    await page.goto(`${ctx.authlib.base}/login`);
    await page.waitForURL(`${ctx.authlib.base}/`);
    assert.match(await page.textContent('#who'), new RegExp(email.replace('.', '\\.')));
    assert.deepEqual(asked, [], 'no sign-in page was shown after the first');
  }

  /** A new account, and a browser (its own context) signed in to all three apps with it. */
  async function newUserSignedInEverywhere(email) {
    await register(ctx.server, email);
    const context = await ctx.browser.newContext();
    const page = await context.newPage();
    await signInEverywhere(page, email);
    return { context, page };
  }

  /** The deliveries to `client` as they stand now (newest first), without waiting. */
  async function deliveriesNow(client) {
    const page = await admin(`/admin/clients/${client.client_id}/deliveries`);
    return page.deliveries ?? page.items ?? page;
  }

  /** The newest back-channel deliveries to `client`, waited for until none is pending. */
  async function deliveries(client, { atLeast = 1, timeout = 10_000 } = {}) {
    const deadline = Date.now() + timeout;
    for (;;) {
      const page = await admin(`/admin/clients/${client.client_id}/deliveries`);
      const items = page.deliveries ?? page.items ?? page;
      if (items.length >= atLeast && items.every((d) => d.status !== 'pending')) return items;
      if (Date.now() > deadline) throw new Error(`deliveries to ${client.client_id}: ${JSON.stringify(items)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  test('one password signs the browser in to Apache, Express and Authlib apps; Apache\'s session names the sign-in', () =>
    scenario('rp-sso', browsers, async () => {
      const email = 'rp-sso@example.com';
      const { context, page } = await newUserSignedInEverywhere(email);
      // mod_auth_openidc's session holds the ID token it verified (RS256): its sid is the one
      // every app got for this browser's sign-in.
      const info = await (await context.request.get(`${ctx.apache.base}/private/redirect_uri?info=json`)).json();
      const claims = info.id_token;
      assert.equal(claims.email, email);
      assert.equal(claims.iss, ctx.server.base);
      const sids = [
        claims.sid,
        (await reaches(page, `${ctx.express.base}/`)) && (await page.textContent('#who')).match(/sid (\S+)\)/)[1],
        (await reaches(page, `${ctx.authlib.base}/`)) && (await page.textContent('#who')).match(/sid (\S+)\)/)[1],
      ];
      assert.equal(new Set(sids).size, 1, `one sign-in, one sid: ${sids}`);
      await context.close();
    }));

  test('RP-initiated logout at the Authlib app loads Express\'s front-channel logout, returns to its page with its state, and Apache and Express then ask for a password', () =>
    scenario('rp-logout-authlib', browsers, async () => {
      const email = 'rp-logout@example.com';
      const { context, page } = await newUserSignedInEverywhere(email);
      const before = { apache: (await deliveries(ctx.clients.apache, { atLeast: 0 })).length, express: (await deliveries(ctx.clients.express, { atLeast: 0 })).length };
      await page.goto(`${ctx.express.base}/`);
      const sid = (await page.textContent('#who')).match(/sid (\S+)\)/)[1];
      await page.goto(`${ctx.authlib.base}/`);
      await Promise.all([page.waitForURL(`${ctx.authlib.base}/logged-out?*`), page.click('#logout')]);
      // The redirect waited for the back-channel logouts: delivered before the browser landed.
      const landed = { apache: await deliveriesNow(ctx.clients.apache), express: await deliveriesNow(ctx.clients.express) };
      assert.equal(landed.apache.length, before.apache + 1);
      assert.equal(landed.express.length, before.express + 1);
      assert.equal(landed.apache[0].status, 'delivered', 'Apache was told (it takes 400 ms) before the redirect');
      assert.equal(landed.express[0].status, 'delivered');
      assert.equal(await page.textContent('#bye'), 'Signed out.', 'the state came back');
      // On the way, signoff's signed-out page loaded the Express app's front-channel logout.
      assert.deepEqual(ctx.express.frontchannel.filter((f) => f.sid === sid), [{ iss: ctx.server.base, sid }]);
      // So the apps already know: no polling.
      assert.equal(await reaches(page, `${ctx.apache.base}/private/`), false, 'Apache sends the browser to sign in');
      assert.equal(await reaches(page, `${ctx.express.base}/`), false, 'Express sends the browser to sign in');
      await context.close();
    }));

  test('RP-initiated logout at Apache (mod_auth_openidc) lands on its page, and the Express app asks for a password', () =>
    scenario('rp-logout-apache', browsers, async () => {
      const email = 'rp-logout-apache@example.com';
      const { context, page } = await newUserSignedInEverywhere(email);
      const bye = `${ctx.apache.base}/bye.html`;
      const expressBefore = (await deliveries(ctx.clients.express, { atLeast: 0 })).length;
      await page.goto(`${ctx.apache.base}/private/redirect_uri?logout=${encodeURIComponent(bye)}`);
      await page.waitForURL(bye);
      const landed = await deliveriesNow(ctx.clients.express);
      assert.equal(landed.length, expressBefore + 1);
      assert.equal(landed[0].status, 'delivered', 'Express was told before the redirect');
      assert.equal(await reaches(page, `${ctx.express.base}/`), false, 'Express sends the browser to sign in');
      assert.equal(await reaches(page, `${ctx.apache.base}/private/`), false, 'Apache too');
      // signoff's own session ended with it.
      await page.goto(`${ctx.server.base}/app`);
      await page.waitForURL((u) => isSignIn(u.href));
      await context.close();
    }));

  test('RP-initiated logout at the Express app lands on its page, and Apache asks for a password', () =>
    scenario('rp-logout-express', browsers, async () => {
      const email = 'rp-logout-express@example.com';
      const { context, page } = await newUserSignedInEverywhere(email);
      await page.goto(`${ctx.express.base}/`);
      const apacheBefore = (await deliveries(ctx.clients.apache, { atLeast: 0 })).length;
      await Promise.all([page.waitForURL(`${ctx.express.base}/bye`), page.click('#logout')]);
      const landed = await deliveriesNow(ctx.clients.apache);
      assert.equal(landed.length, apacheBefore + 1);
      assert.equal(landed[0].status, 'delivered', 'Apache was told (it takes 400 ms) before the redirect');
      assert.equal(await reaches(page, `${ctx.apache.base}/private/`), false, 'Apache sends the browser to sign in');
      await context.close();
    }));

  test('"Sign out everywhere" at signoff from another device ends every single-logout app\'s session; the app nobody used hears nothing', () =>
    scenario('rp-everywhere', browsers, async () => {
      const email = 'rp-everywhere@example.com';
      await register(ctx.server, email);
      const laptop = await ctx.browser.newContext();
      const page = await laptop.newPage();
      await signInEverywhere(page, email);
      const phone = await ctx.browser.newContext();
      const other = await phone.newPage();
      await signIn(other, ctx.server, email);
      const apacheBefore = (await deliveries(ctx.clients.apache, { atLeast: 0 })).length;
      const expressBefore = (await deliveries(ctx.clients.express, { atLeast: 0 })).length;
      await Promise.all([other.waitForURL(/\/login/), other.click('button:text-is("Sign out everywhere")')]);
      // Deliveries leave from the outbox after the commit: wait until they are done, then look.
      assert.equal((await deliveries(ctx.clients.apache, { atLeast: apacheBefore + 1 }))[0].status, 'delivered');
      assert.equal((await deliveries(ctx.clients.express, { atLeast: expressBefore + 1 }))[0].status, 'delivered');
      assert.equal(await reaches(page, `${ctx.apache.base}/private/`), false, 'Apache sends the laptop to sign in');
      assert.equal(await reaches(page, `${ctx.express.base}/`), false, 'Express sends the laptop to sign in');
      assert.deepEqual(ctx.bystander.received, [], 'the app nobody signed in to got nothing');
      assert.deepEqual(await admin(`/admin/clients/${ctx.clients.bystander.client_id}/deliveries`).then((p) => p.deliveries ?? p.items ?? p), []);
      await laptop.close();
      await phone.close();
    }));

  test('ending one device at signoff (by signoff.js) logs that device out of the apps, front channel too, and leaves the other device signed in to them', () =>
    scenario('rp-one-device', browsers, async () => {
      const email = 'rp-one-device@example.com';
      await register(ctx.server, email);
      const laptop = await ctx.browser.newContext();
      const tablet = await ctx.browser.newContext();
      const a = await laptop.newPage();
      const b = await tablet.newPage();
      await signInEverywhere(a, email);
      await signInEverywhere(b, email);
      const apacheBefore = (await deliveries(ctx.clients.apache, { atLeast: 0 })).length;
      const expressBefore = (await deliveries(ctx.clients.express, { atLeast: 0 })).length;
      await b.goto(`${ctx.express.base}/`);
      const tabletSid = (await b.textContent('#who')).match(/sid (\S+)\)/)[1];
      // The tablet signs out of signoff itself (this device only), by signoff.js: it goes
      // through the signed-out page that loads the Express app's front-channel logout.
      await b.goto(`${ctx.server.base}/app`);
      const asked = [];
      b.on('request', (r) => asked.push(`${r.method()} ${new URL(r.url()).pathname} ${r.headers().accept ?? ''}`));
      await Promise.all([b.waitForURL(/\/login\?logged_out=1/), b.click('button:text-is("Sign out")')]);
      assert.ok(asked.some((a) => a.startsWith('POST /auth/logout application/json')), `signoff.js logged out: ${asked}`);
      assert.ok(asked.some((a) => a.startsWith('GET /oidc/frontchannel ')), `then went by the signed-out page: ${asked}`);
      assert.deepEqual(ctx.express.frontchannel.filter((f) => f.sid === tabletSid), [{ iss: ctx.server.base, sid: tabletSid }]);
      // Deliveries leave from the outbox after the commit: wait until they are done, then look.
      await deliveries(ctx.clients.apache, { atLeast: apacheBefore + 1 });
      await deliveries(ctx.clients.express, { atLeast: expressBefore + 1 });
      assert.equal(await reaches(b, `${ctx.express.base}/`), false, 'the tablet is out of the Express app');
      assert.equal(await reaches(b, `${ctx.apache.base}/private/`), false, 'and out of Apache');
      assert.ok(await reaches(a, `${ctx.express.base}/`), 'the laptop is still in the Express app');
      assert.ok(await reaches(a, `${ctx.apache.base}/private/`), 'and in Apache');
      await laptop.close();
      await tablet.close();
    }));

  test('logout tokens replayed to Apache and Express, and a forged one, change nothing', () =>
    scenario('rp-replay', browsers, async () => {
      const email = 'rp-replay@example.com';
      const { context, page } = await newUserSignedInEverywhere(email);
      const apacheBefore = ctx.apacheTokens.length;
      const expressBefore = ctx.express.logoutTokens.length;
      await page.goto(`${ctx.server.base}/app`);
      await Promise.all([page.waitForURL(/\/login\?logged_out=1/), page.click('button:text-is("Sign out")')]);
      await until(() => ctx.apacheTokens.length > apacheBefore && ctx.express.logoutTokens.length > expressBefore, 'both logout tokens');
      const toApache = ctx.apacheTokens.at(-1);
      const toExpress = ctx.express.logoutTokens.at(-1);
      const claims = JSON.parse(Buffer.from(toExpress.split('.')[1], 'base64url').toString());
      assert.equal(claims.sub, undefined, 'an app is told the sign-in (sid), not the user');
      // The same browser signs in again: a new sign-in, which the old tokens must not end.
      await signInEverywhere(page, email);
      const post = (url, token) => fetch(url, {
        method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: `logout_token=${token}`,
      });
      const atApache = `${ctx.apache.base}/private/redirect_uri?logout=backchannel`;
      const replayed = await post(atApache, toApache);
      assert.equal(replayed.status, 400, 'mod_auth_openidc refuses a jti it has seen');
      // A token for this very sign-in, as signoff would write it, with a signature it never made.
      await page.goto(`${ctx.express.base}/`);
      const sid = (await page.textContent('#who')).match(/sid (\S+)\)/)[1];
      const [h, p] = toApache.split('.');
      const old = JSON.parse(Buffer.from(p, 'base64url').toString());
      const now = Math.floor(Date.now() / 1000);
      const claimsNow = { ...old, sid, jti: `forged-${now}`, iat: now, exp: now + 120 };
      const body = Buffer.from(JSON.stringify(claimsNow)).toString('base64url');
      const forged = await post(atApache, `${h}.${body}.${Buffer.from('not a signature').toString('base64url')}`);
      assert.equal(forged.status, 400, 'mod_auth_openidc refuses a forged signature');
      // express-openid-connect keeps no jti: it takes the replay, for a sign-in that has ended.
      const again = await post(`${ctx.express.base}/backchannel-logout`, toExpress);
      assert.equal(again.status, 204);
      assert.ok(await reaches(page, `${ctx.express.base}/`), 'this browser is still in the Express app');
      assert.ok(await reaches(page, `${ctx.apache.base}/private/`), 'and in Apache');
      await context.close();
    }));
}

async function until(check, what, timeout = 10_000) {
  const deadline = Date.now() + timeout;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
