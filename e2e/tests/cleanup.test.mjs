// After logout the browser forgets: storage, Cache Storage and the cookie jar. The server here
// sends no Clear-Site-Data, so the cleanup below is signoff.js's own work.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { suite, register, signIn, scenario, sessionCookieName } from '../lib/harness.mjs';

const t = suite({ SIGNOFF_CLEAR_SITE_DATA: '' });

const appData = (page) =>
  page.evaluate(async () => ({
    local: Object.keys(localStorage).filter((k) => k.startsWith('demo:')),
    session: Object.keys(sessionStorage),
    caches: window.caches ? await caches.keys() : [],
  }));

test('after logout, storage, Cache Storage and the cookie jar hold none of the app\'s data', () =>
  scenario('cleanup', () => [t.browser], async () => {
    await register(t.server, 'clean@example.com');
    const ctx = await t.browser.newContext();
    const page = await ctx.newPage();
    await signIn(page, t.server, 'clean@example.com');
    await page.waitForFunction(async () => (await caches.keys()).includes('demo-api'));
    const before = await appData(page);
    assert.deepEqual(before.local.sort(), ['demo:draft', 'demo:profile']);
    assert.deepEqual(before.session, ['demo:tab']);
    assert.ok((await ctx.cookies()).some((c) => c.name === sessionCookieName));

    await Promise.all([page.waitForURL(/\/login\?logged_out=1/), page.click('button:text-is("Sign out")')]);
    const afterLogout = await appData(page);
    assert.deepEqual(afterLogout, { local: [], session: [], caches: [] });
    assert.ok(!(await ctx.cookies()).some((c) => c.name.startsWith('__Host-signoff')), 'signoff cookies gone from the jar');
    await ctx.close();
  }));

test('a copied session cookie replayed after logout gets 401', () =>
  scenario('replay', () => [t.browser], async () => {
    await register(t.server, 'replay@example.com');
    const ctx = await t.browser.newContext();
    const page = await ctx.newPage();
    await signIn(page, t.server, 'replay@example.com');
    const stolen = (await ctx.cookies()).find((c) => c.name === sessionCookieName);
    assert.ok(stolen);
    const replay = () => fetch(`${t.server.base}/auth/session`, { headers: { cookie: `${stolen.name}=${stolen.value}`, accept: 'application/json' } });
    assert.equal((await replay()).status, 200);
    await Promise.all([page.waitForURL(/\/login\?logged_out=1/), page.click('button:text-is("Sign out")')]);
    assert.equal((await replay()).status, 401);
    await ctx.close();
  }));
