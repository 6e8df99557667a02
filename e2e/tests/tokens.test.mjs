// signoff.js in token mode: the access token lives in memory only, and refreshes from several
// tabs never present a rotated refresh token (one refresh in flight across tabs). The server
// runs with no reuse grace, so a single stale refresh would revoke the whole family.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { suite, register, scenario, PASSWORD } from '../lib/harness.mjs';

const t = suite({ SIGNOFF_REFRESH_REUSE_GRACE_SECONDS: '0' });

async function tabWithClient(ctx) {
  const page = await ctx.newPage();
  await page.goto(`${t.server.base}/login`);
  await page.addScriptTag({ url: '/signoff.js' });
  return page;
}

test('token mode keeps the access token in memory and serialises refreshes across tabs', () =>
  scenario('token-mode', () => [t.browser], async () => {
    await register(t.server, 'spa@example.com');
    const ctx = await t.browser.newContext();
    const one = await tabWithClient(ctx);
    const me = await one.evaluate(async ([email, password]) => {
      await signoff.tokens.login(email, password);
      const res = await signoff.tokens.fetch('/api/me');
      return { status: res.status, body: await res.json() };
    }, ['spa@example.com', PASSWORD]);
    assert.equal(me.status, 200);
    assert.equal(me.body.user.email, 'spa@example.com');

    const stored = await one.evaluate(() => ({ ...localStorage, ...sessionStorage }));
    const values = Object.values(stored).join(' ');
    assert.ok(!values.includes('eyJ'), 'no access token (JWT) in web storage');
    assert.equal(await one.evaluate(() => signoff.tokens.stored()), true, 'the refresh token is kept (IndexedDB) for the other tabs');

    // Three tabs refresh at once, several times: every refresh must succeed.
    const tabs = [one, await tabWithClient(ctx), await tabWithClient(ctx)];
    for (let round = 0; round < 3; round++) {
      const results = await Promise.all(tabs.map((t) => t.evaluate(() => signoff.tokens.refresh().then(() => 'ok', (e) => e.message))));
      assert.deepEqual(results, ['ok', 'ok', 'ok'], `round ${round}`);
    }
    const after = await tabs[2].evaluate(async () => (await signoff.tokens.fetch('/api/me')).status);
    assert.equal(after, 200, 'the family was never taken for stolen');

    // Logging out forgets the refresh token and revokes its family.
    // The logout navigates away, so the evaluation must not wait for it (its page is gone by then).
    await Promise.all([one.waitForURL(/\/login\?logged_out=1/), one.evaluate(() => { void signoff.logout(); })]);
    await one.addScriptTag({ url: '/signoff.js' });
    assert.equal(await one.evaluate(() => signoff.tokens.stored()), false);
    await ctx.close();
  }));
