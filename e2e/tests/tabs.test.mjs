// Two tabs of one browser, and a page on another origin.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { suite, register, signIn, scenario, freePort } from '../lib/harness.mjs';

const t = suite();

test('logging out in one tab signs out the other', () =>
  scenario('two-tabs', () => [t.browser], async () => {
    await register(t.server, 'tabs@example.com');
    const ctx = await t.browser.newContext();
    const one = await ctx.newPage();
    await signIn(one, t.server, 'tabs@example.com');
    const two = await ctx.newPage();
    await two.goto(`${t.server.base}/app/sessions`);
    assert.match(await two.textContent('main'), /Your devices/);
    await two.waitForTimeout(300);
    await Promise.all([one.waitForURL(/\/login\?logged_out=1/), one.click('button:text-is("Sign out")')]);
    await two.waitForURL(/\/login\?revoked=1/, { timeout: 2000 });
    assert.ok(!(await two.textContent('body')).includes('Your devices'));
    await ctx.close();
  }));

test('a page on another origin that auto-submits a logout form does not log the user out', () =>
  scenario('cross-origin', () => [t.browser], async () => {
    await register(t.server, 'csrf@example.com');
    const ctx = await t.browser.newContext();
    const page = await ctx.newPage();
    await signIn(page, t.server, 'csrf@example.com');

    const port = await freePort();
    const evil = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<!doctype html><form id=f method=post action="${t.server.base}/auth/logout">
        <input type=hidden name=scope value=global></form><script>document.getElementById('f').submit()</script>`);
    });
    await new Promise((r) => evil.listen(port, '127.0.0.1', r));
    try {
      const attack = await ctx.newPage();
      const answer = attack.waitForResponse((r) => r.url().startsWith(`${t.server.base}/auth/logout`));
      await attack.goto(`http://127.0.0.1:${port}/`);
      assert.equal((await answer).status(), 403);
      await attack.close();
    } finally {
      evil.close();
    }
    await page.goto(`${t.server.base}/app`);
    assert.equal(new URL(page.url()).pathname, '/app', 'still signed in');
    assert.match(await page.textContent('main'), /csrf@example\.com/);
    await ctx.close();
  }));
