// watch() keeps listening through refusals: an /auth/events stream answered with 429 (too many
// open) or 503 (busy) is opened again with backoff, so the page still leaves the moment its
// session ends (the second outside review's finding 6: after one refusal it never reopened).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { suite, register, signIn, scenario, PASSWORD } from '../lib/harness.mjs';

const t = suite();

test('a refused event stream is opened again, and a logout elsewhere still reaches the page', () =>
  scenario('watch-reopen', () => [t.browser], async () => {
    await register(t.server, 'watcher@example.com');
    const ctx = await t.browser.newContext();
    const page = await ctx.newPage();
    let refused = 0;
    await page.route('**/auth/events', (route) => {
      if (refused < 2) {
        refused += 1;
        const status = refused === 1 ? 429 : 503;
        return route.fulfill({ status, contentType: 'application/json', headers: { 'retry-after': '1' }, body: '{"error":"too_many_streams"}' });
      }
      return route.continue();
    });
    const streams = [];
    page.on('request', (r) => { if (r.url().endsWith('/auth/events')) streams.push(Date.now()); });
    await signIn(page, t.server, 'watcher@example.com');
    // Two refusals, then the real stream: three requests, the later ones after a pause.
    const deadline = Date.now() + 15_000;
    while (streams.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.equal(streams.length, 3, `stream requests: ${streams.length}`);
    // Backoff doubles: about 1 s (0.75-1.25 s) before the first reopen, 2 s (1.5-2.5 s) before the second.
    const [first, second] = [streams[1] - streams[0], streams[2] - streams[1]];
    assert.ok(first >= 700 && second >= 1400 && second > first, `pauses of ${first} ms, then ${second} ms`);
    // Signed out everywhere from another device: the page hears it on the reopened stream.
    const api = await fetch(`${t.server.base}/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ grant_type: 'password', email: 'watcher@example.com', password: PASSWORD }),
    });
    const { access_token: token } = await api.json();
    const out = await fetch(`${t.server.base}/auth/logout`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ scope: 'global' }),
    });
    assert.equal(out.status, 200);
    await page.waitForURL(/\/login\?revoked=1/, { timeout: 10_000 });
    await ctx.close();
  }));
