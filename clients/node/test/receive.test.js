// The receivers of logout notifications against a real signoff: back-channel logout tokens and
// webhooks it sends to an Express app on loopback, the webhook signatures checked by this
// package and by the Standard Webhooks reference package (npm `standardwebhooks`).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import express from 'express';
import { createServer } from 'node:http';
import { createHash, randomBytes } from 'node:crypto';
import { Webhook } from 'standardwebhooks';
import { ReceiveError, createLogoutTokenVerifier, logoutReceiver, verifyWebhook, webhookReceiver } from '../src/index.js';
import { ADMIN, PASSWORD, closers, sleep, startSignoff } from './signoff.js';

const claimsOf = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString());
const decodeProtectedHeader = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[0], 'base64url').toString());

// Polls `check` until it returns something truthy, for at most `ms`.
async function until(check, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const got = await check();
    if (got) return got;
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await sleep(25);
  }
}

// signoff, an app receiving at /bc and /hook (handlers set once the client exists), a client
// registered with both, and a user with a token.
async function setup(email, registration = {}) {
  const s = await startSignoff({ SIGNOFF_ALLOW_PRIVATE_CALLBACKS: 'true' });
  const got = { logoutTokens: [], webhooks: [] };
  const handlers = {};
  const app = express();
  app.post('/bc', express.urlencoded({ extended: false }), (req, res) => {
    got.logoutTokens.push(req.body.logout_token);
    return handlers.bc(req, res);
  });
  app.post('/hook', express.raw({ type: '*/*' }), (req, res) => {
    got.webhooks.push({ headers: { ...req.headers }, body: req.body.toString('utf8') });
    return handlers.hook(req, res);
  });
  const server = await new Promise((resolve) => {
    const srv = app.listen(0, '127.0.0.1', () => resolve(srv));
  });
  closers.push(() => new Promise((r) => server.close(r)));
  const appBase = `http://127.0.0.1:${server.address().port}`;
  const r = await s.post(
    '/admin/clients',
    { name: 'node app', backchannel_logout_uri: `${appBase}/bc`, webhook_url: `${appBase}/hook`, ...registration },
    ADMIN,
  );
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const client = r.body;
  assert.equal((await s.post('/auth/register', { email, password: PASSWORD })).status, 201);
  return { s, got, handlers, client, appBase };
}

async function signIn(s, email) {
  const r = await s.post('/auth/token', { grant_type: 'password', email, password: PASSWORD });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.access_token;
}

async function bearerLogout(s, token) {
  const r = await s.post('/auth/logout', {}, token);
  assert.equal(r.status, 200, JSON.stringify(r.body));
}

async function deliveries(s, clientId) {
  const res = await fetch(`${s.base}/admin/clients/${clientId}/deliveries`, { headers: { authorization: `Bearer ${ADMIN}` } });
  return (await res.json()).deliveries;
}

test('a logout reaches the app: the logout token verified, the webhook checked here and by standardwebhooks', async () => {
  const { s, got, handlers, client } = await setup('recv@example.com');
  const logouts = [];
  const events = [];
  handlers.bc = logoutReceiver({ url: s.base, clientId: client.client_id, onLogout: (l) => logouts.push(l) });
  handlers.hook = webhookReceiver({ secret: client.webhook_secret, onEvent: (e, meta) => events.push({ e, meta }) });
  const token = await signIn(s, 'recv@example.com');
  const { sub, sid } = claimsOf(token);
  await bearerLogout(s, token);

  await until(() => logouts.length === 1 && events.some((x) => x.e.type === 'session.ended'), 10_000, 'both notifications');
  assert.equal(logouts[0].sid, sid);
  assert.equal(logouts[0].sub, sub);
  assert.equal(logouts[0].claims.aud, client.client_id);
  const ended = events.find((x) => x.e.type === 'session.ended');
  assert.deepEqual(ended.e.data, { user_id: sub, session_id: sid, reason: 'logout' });
  assert.match(ended.meta.id, /^msg_/);
  await until(
    async () => {
      const list = await deliveries(s, client.client_id);
      return list.length >= 2 && list.every((d) => d.status === 'delivered' && d.last_status_code >= 200 && d.last_status_code < 300);
    },
    5000,
    'both recorded as delivered',
  );

  // The same webhook, checked by the reference package, and refused by both when altered.
  const hook = got.webhooks.find((w) => JSON.parse(w.body).type === 'session.ended');
  const reference = new Webhook(client.webhook_secret);
  assert.deepEqual(reference.verify(hook.body, hook.headers), JSON.parse(hook.body));
  assert.deepEqual(verifyWebhook(client.webhook_secret, hook.headers, hook.body), JSON.parse(hook.body));
  const altered = hook.body.replace('logout', 'lagout');
  assert.throws(() => reference.verify(altered, hook.headers));
  assert.throws(() => verifyWebhook(client.webhook_secret, hook.headers, altered), ReceiveError);
  const stranger = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
  assert.throws(() => verifyWebhook(stranger, hook.headers, hook.body), ReceiveError);
  assert.throws(() => verifyWebhook(client.webhook_secret, { ...hook.headers, 'webhook-id': 'msg_other' }, hook.body), ReceiveError);

  // A message the reference package signs is accepted here; one too old, or unsigned, is not.
  const payload = JSON.stringify({ type: 'token.revoked', timestamp: new Date().toISOString(), data: { jti: 'j' } });
  const at = new Date();
  const headers = {
    'webhook-id': 'msg_ref',
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': reference.sign('msg_ref', at, payload),
  };
  assert.deepEqual(verifyWebhook(client.webhook_secret, headers, payload), JSON.parse(payload));
  assert.deepEqual(verifyWebhook(client.webhook_secret, headers, Buffer.from(payload)), JSON.parse(payload));
  const old = new Date(at.getTime() - 10 * 60_000);
  const stale = { ...headers, 'webhook-timestamp': String(Math.floor(old.getTime() / 1000)), 'webhook-signature': reference.sign('msg_ref', old, payload) };
  assert.throws(() => verifyWebhook(client.webhook_secret, stale, payload), /tolerance/);
  assert.throws(() => verifyWebhook(client.webhook_secret, { ...headers, 'webhook-signature': undefined }, payload), /missing/);
});

test('logout tokens are verified in the algorithm the client registered: RS256, ES256, EdDSA', async () => {
  for (const alg of ['RS256', 'ES256', 'EdDSA']) {
    const email = `alg-${alg.toLowerCase()}@example.com`;
    const { s, got, handlers, client } = await setup(email, { id_token_signed_response_alg: alg });
    const logouts = [];
    handlers.bc = logoutReceiver({ url: s.base, clientId: client.client_id, onLogout: (l) => logouts.push(l) });
    handlers.hook = webhookReceiver({ secret: client.webhook_secret, onEvent: () => {} });
    const token = await signIn(s, email);
    await bearerLogout(s, token);
    await until(() => logouts.length === 1, 10_000, `the ${alg} logout token`);
    assert.equal(decodeProtectedHeader(got.logoutTokens[0]).alg, alg);
    assert.equal(logouts[0].sid, claimsOf(token).sid);
  }
});

test('an app that signs users in is told the sign-in it signed in to (sid only), and the receiver takes it', async () => {
  const email = 'rp-receiver@example.com';
  const redirect = 'http://127.0.0.1:9/callback';
  const { s, got, handlers, client } = await setup(email, { redirect_uris: [redirect], webhook_url: undefined });
  const logouts = [];
  handlers.bc = logoutReceiver({ url: s.base, clientId: client.client_id, onLogout: (l) => logouts.push(l) });
  // A browser signs in at signoff, then to the app by the code flow with PKCE.
  const login = await fetch(`${s.base}/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ email, password: PASSWORD }),
  });
  assert.equal(login.status, 200);
  const cookie = login.headers.getSetCookie().map((c) => c.split(';')[0]).join('; ');
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const authorize = new URL(`${s.base}/oidc/authorize`);
  for (const [k, v] of Object.entries({ client_id: client.client_id, redirect_uri: redirect, response_type: 'code', scope: 'openid email', state: 'st', nonce: 'n', code_challenge: challenge, code_challenge_method: 'S256' })) {
    authorize.searchParams.set(k, v);
  }
  const back = await fetch(authorize, { headers: { cookie }, redirect: 'manual' });
  const code = new URL(back.headers.get('location')).searchParams.get('code');
  assert.ok(code, `a code: ${back.status} ${back.headers.get('location')}`);
  const token = await fetch(`${s.base}/oidc/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`${client.client_id}:${client.client_secret}`).toString('base64')}` },
    body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirect, code_verifier: verifier }),
  });
  assert.equal(token.status, 200);
  const idToken = (await token.json()).id_token;
  // RP-initiated logout with the ID token as hint ends the sign-in; the app is told.
  const out = await fetch(`${s.base}/oidc/logout?id_token_hint=${idToken}`, { headers: { cookie }, redirect: 'manual' });
  assert.ok(out.status < 400, `logout: ${out.status}`);
  await until(() => logouts.length === 1, 10_000, 'the logout token');
  assert.equal(logouts[0].sid, claimsOf(idToken).sid, "the sid of the app's ID token");
  assert.equal(logouts[0].sub, undefined);
  assert.equal(claimsOf(got.logoutTokens[0]).sub, undefined, 'no sub in the token');
  assert.equal(decodeProtectedHeader(got.logoutTokens[0]).alg, 'RS256');
});

test('a repeat is handled once, a token not meant for this app is refused, a failing handler is retried', async () => {
  const { s, got, handlers, client, appBase } = await setup('repeat@example.com');
  const logouts = [];
  let failNext = 0;
  handlers.bc = logoutReceiver({
    url: s.base,
    clientId: client.client_id,
    onLogout: (l) => {
      if (failNext > 0) {
        failNext -= 1;
        throw new Error('the app store is down');
      }
      logouts.push(l);
    },
  });
  handlers.hook = webhookReceiver({ secret: client.webhook_secret, onEvent: () => {} });
  const token = await signIn(s, 'repeat@example.com');
  await bearerLogout(s, token);
  await until(() => logouts.length === 1, 10_000, 'the logout');
  const logoutToken = got.logoutTokens[0];

  const post = (body, type = 'application/x-www-form-urlencoded') =>
    fetch(`${appBase}/bc`, { method: 'POST', headers: { 'content-type': type }, body });
  // The same token again (a delivery repeated after a crash): 200, the handler not run again.
  assert.equal((await post(`logout_token=${logoutToken}`)).status, 200);
  assert.equal(logouts.length, 1);
  // Not a logout token for this app: refused with 400.
  for (const bad of [`logout_token=${token}`, 'logout_token=garbage', 'logout_token=', 'nothing=here']) {
    assert.equal((await post(bad)).status, 400, bad);
  }
  const forOther = createLogoutTokenVerifier({ url: s.base, clientId: 'another-client' });
  await assert.rejects(forOther(logoutToken), (e) => e instanceof ReceiveError && e.code === 'invalid');
  const forUs = createLogoutTokenVerifier({ url: s.base, clientId: client.client_id });
  assert.equal((await forUs(logoutToken)).jti, claimsOf(logoutToken).jti);
  const wrongIssuer = createLogoutTokenVerifier({ url: s.base, issuer: 'https://elsewhere.example', clientId: client.client_id });
  await assert.rejects(wrongIssuer(logoutToken), (e) => {
    assert.ok(e instanceof ReceiveError && e.code === 'invalid');
    assert.ok(e.message.includes('https://elsewhere.example') && e.message.includes(s.public), e.message);
    return true;
  });
  assert.equal(logouts.length, 1);

  // The handler fails once: 503, and signoff tries again (within seconds) until it is handled.
  failNext = 1;
  const second = await signIn(s, 'repeat@example.com');
  await bearerLogout(s, second);
  await until(() => logouts.length === 2, 15_000, 'the retried logout');
  assert.equal(logouts[1].sid, claimsOf(second).sid);
  assert.equal(failNext, 0);
  const list = await until(
    async () => {
      const l = await deliveries(s, client.client_id);
      const bc = l.find((d) => d.kind === 'backchannel_logout' && d.attempts === 2);
      return bc?.status === 'delivered' ? l : null;
    },
    5000,
    'the retried delivery recorded',
  );
  assert.ok(list.some((d) => d.kind === 'backchannel_logout' && d.status === 'delivered' && d.attempts === 2));
});

test('during a webhook-secret rotation a receiver knowing either secret accepts', async () => {
  const { s, got, handlers, client } = await setup('rotate@example.com');
  handlers.bc = logoutReceiver({ url: s.base, clientId: client.client_id, onLogout: () => {} });
  const oldSecret = client.webhook_secret;
  const res = await fetch(`${s.base}/admin/clients/${client.client_id}/webhook-secret`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ overlap_seconds: 3600 }),
  });
  assert.equal(res.status, 200);
  const newSecret = (await res.json()).webhook_secret;
  const seenByOld = [];
  const seenByNew = [];
  const onlyOld = webhookReceiver({ secret: oldSecret, onEvent: (e) => seenByOld.push(e) });
  const onlyNew = webhookReceiver({ secrets: [newSecret], onEvent: (e) => seenByNew.push(e) });
  handlers.hook = async (req, res) => {
    // Both receivers judge the same delivery (the raw body is already read by express.raw).
    const sink = { statusCode: 0, setHeader() {}, end() {} };
    await onlyOld(req, sink);
    await onlyNew(req, res);
  };
  const token = await signIn(s, 'rotate@example.com');
  await bearerLogout(s, token);
  await until(() => seenByNew.some((e) => e.type === 'session.ended'), 10_000, 'the webhook');
  assert.ok(seenByOld.some((e) => e.type === 'session.ended'), 'the old secret still verifies during the overlap');
  const hook = got.webhooks.find((w) => JSON.parse(w.body).type === 'session.ended');
  assert.equal(hook.headers['webhook-signature'].split(' ').length, 2);
  for (const secret of [oldSecret, newSecret]) {
    assert.deepEqual(new Webhook(secret).verify(hook.body, hook.headers), JSON.parse(hook.body));
  }
});

test('mounted without a body parser, the receivers read the raw body themselves, within limits', async () => {
  const { s, got, handlers, client } = await setup('raw@example.com');
  handlers.bc = logoutReceiver({ url: s.base, clientId: client.client_id, onLogout: () => {} });
  handlers.hook = webhookReceiver({ secret: client.webhook_secret, onEvent: () => {} });
  await bearerLogout(s, await signIn(s, 'raw@example.com'));
  // The logout sends a session.ended webhook and a token.revoked one (the bearer token is
  // denied), in order, possibly within one poll of each other: wait for the first of them.
  const ended = () => got.webhooks.find((w) => JSON.parse(w.body).type === 'session.ended');
  await until(() => got.logoutTokens.length >= 1 && ended() !== undefined, 10_000, 'both notifications');

  // A bare node:http server, no framework, no parser: what signoff sent, replayed to it.
  const logouts = [];
  const events = [];
  const bc = logoutReceiver({ url: s.base, clientId: client.client_id, onLogout: (l) => logouts.push(l) });
  const hook = webhookReceiver({ secret: client.webhook_secret, onEvent: (e) => events.push(e) });
  const server = createServer((req, res) => (req.url === '/bc' ? bc(req, res) : hook(req, res)));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise((r) => server.close(r)));
  const base = `http://127.0.0.1:${server.address().port}`;
  const form = { 'content-type': 'application/x-www-form-urlencoded' };
  const token = got.logoutTokens[0];
  let res = await fetch(`${base}/bc`, { method: 'POST', headers: form, body: `logout_token=${token}` });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('cache-control'), 'no-store');
  assert.equal(logouts.length, 1);
  assert.equal(logouts[0].sid, claimsOf(token).sid);
  const { headers, body } = ended();
  const sent = { 'content-type': 'application/json', ...Object.fromEntries(Object.entries(headers).filter(([k]) => k.startsWith('webhook-'))) };
  res = await fetch(`${base}/hook`, { method: 'POST', headers: sent, body });
  assert.equal(res.status, 204);
  assert.deepEqual(events, [JSON.parse(body)]);

  // Not a form, too large, or a body that is not what was signed: 400, nothing handled.
  res = await fetch(`${base}/bc`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ logout_token: token }) });
  assert.equal(res.status, 400);
  res = await fetch(`${base}/bc`, { method: 'POST', headers: form, body: `logout_token=${'a'.repeat(70 * 1024)}` });
  assert.equal(res.status, 400);
  res = await fetch(`${base}/hook`, { method: 'POST', headers: sent, body: body + ' ' });
  assert.equal(res.status, 400);
  assert.equal((await res.json()).error, 'invalid_request');
  assert.equal(logouts.length, 1);
  assert.equal(events.length, 1);
});

test('a logout token signed with a key the receiver has not fetched yet gets 503, and arrives once it has', async () => {
  const { s, got, handlers, client } = await setup('newkey@example.com');
  const logouts = [];
  handlers.bc = logoutReceiver({ url: s.base, clientId: client.client_id, onLogout: (l) => logouts.push(l) });
  handlers.hook = webhookReceiver({ secret: client.webhook_secret, onEvent: () => {} });
  await bearerLogout(s, await signIn(s, 'newkey@example.com'));
  await until(() => logouts.length === 1, 10_000, 'the first logout');
  // A second receiver that fetches the key set now, and would not again for an hour.
  const before = logoutReceiver({ url: s.base, clientId: client.client_id, jwksCooldownMs: 3_600_000, onLogout: () => {} });
  const replay = (receiver, token) =>
    new Promise((resolve) => {
      const req = Object.assign(
        (async function* () {
          yield Buffer.from(`logout_token=${token}`);
        })(),
        { headers: { 'content-type': 'application/x-www-form-urlencoded' } },
      );
      const res = { statusCode: 0, setHeader() {}, end: () => resolve(res.statusCode) };
      receiver(req, res);
    });
  assert.equal(await replay(before, got.logoutTokens[0]), 200, 'the current key is known to it');
  // signoff signs with a new key from now on (the CLI on the same database; the server reads
  // the change from its feed).
  const kidOf = (jwt) => JSON.parse(Buffer.from(jwt.split('.')[0], 'base64url')).kid;
  const { kid: newKid } = s.cli('keys', 'rotate');
  await until(async () => kidOf((await signIn(s, 'newkey@example.com'))) === newKid, 5000, 'the new key in use');
  await bearerLogout(s, await signIn(s, 'newkey@example.com'));
  // The app's receiver (5 s cooldown) may answer 503 first; signoff's retry gets through.
  await until(() => logouts.length === 2, 30_000, 'the second logout');
  const fresh = got.logoutTokens[got.logoutTokens.length - 1];
  assert.equal(kidOf(fresh), newKid, 'signed with the new key');
  assert.equal(await replay(before, fresh), 503, 'an unknown key is no verdict: signoff will retry');
});

test("a receiver expecting another issuer refuses with 400, and signoff's deliveries view says why", async () => {
  const { s, handlers, client } = await setup('mismatch@example.com');
  handlers.bc = logoutReceiver({ url: s.base, issuer: 'https://elsewhere.example', clientId: client.client_id, onLogout: () => {} });
  handlers.hook = webhookReceiver({ secret: client.webhook_secret, onEvent: () => {} });
  const token = await signIn(s, 'mismatch@example.com');
  await bearerLogout(s, token);
  const failed = await until(
    async () => (await deliveries(s, client.client_id)).find((d) => d.kind === 'backchannel_logout' && d.status === 'failed'),
    10_000,
    'the refused delivery',
  );
  assert.equal(failed.last_status_code, 400);
  assert.equal(failed.attempts, 1);
  assert.match(failed.last_error, /iss is "http:\/\/localhost:\d+", this receiver expects "https:\/\/elsewhere\.example"/);
  // A receiver written the README way (only the URL and the client id) accepts the next one.
  const logouts = [];
  handlers.bc = logoutReceiver({ url: s.base, clientId: client.client_id, onLogout: (l) => logouts.push(l) });
  await bearerLogout(s, await signIn(s, 'mismatch@example.com'));
  await until(() => logouts.length === 1, 10_000, 'the accepted logout');
  const ok = await until(
    async () => (await deliveries(s, client.client_id)).find((d) => d.kind === 'backchannel_logout' && d.status === 'delivered'),
    5_000,
    'the delivered logout recorded',
  );
  assert.equal(ok.last_error, null);
});
