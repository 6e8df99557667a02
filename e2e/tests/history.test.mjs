// After logout, Back and reload never show protected content: with the back/forward cache off
// (Playwright's default) and on.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, launch, register, signIn, scenario } from '../lib/harness.mjs';

const servers = [];
const browsers = [];
after(async () => {
  for (const b of browsers) await b.close();
  for (const s of servers) await s.stop();
});

// A page restored from the back/forward cache checks its session and, finding it gone, leaves
// for the sign-in page by itself: that navigation may land while the test acts on the page.
const navigatedAway = (e) => /context was destroyed|navigat/i.test(String(e?.message));

/** The body's text once the page has settled (asked again if the page navigated meanwhile). */
async function settledText(page) {
  for (let tries = 0; ; tries++) {
    await page.waitForLoadState('load');
    await page.waitForTimeout(400);
    try {
      return { url: new URL(page.url()), body: await page.textContent('body') };
    } catch (e) {
      if (!navigatedAway(e) || tries === 5) throw e;
    }
  }
}

for (const bfcache of [false, true]) {
  test(`Back and reload after logout show no protected content (bfcache ${bfcache ? 'on' : 'off'})`, async () => {
    const server = await startServer();
    servers.push(server);
    const browser = await launch({ bfcache });
    browsers.push(browser);
    await scenario(`history-bfcache-${bfcache}`, () => [browser], async () => {
      const email = `history-${bfcache}@example.com`;
      await register(server, email);
      const ctx = await browser.newContext();
      const page = await ctx.newPage();
      await signIn(page, server, email);
      await page.goto(`${server.base}/app/sessions`);
      await page.goto(`${server.base}/app`);
      assert.match(await page.textContent('main'), new RegExp(email.replace('.', '\\.')));
      await Promise.all([page.waitForURL(/\/login\?logged_out=1/), page.click('button:text-is("Sign out")')]);

      // history.back() (unlike page.goBack()) lets a bfcache restore happen.
      for (let i = 0; i < 3; i++) {
        await page.evaluate(() => history.back()).catch((e) => {
          if (!navigatedAway(e)) throw e;
        });
        const { url, body } = await settledText(page);
        assert.ok(!body.includes(email) && !body.includes('Your devices'), `Back showed protected content at ${url}: ${body.slice(0, 200)}`);
      }
      await page.goto(`${server.base}/app`);
      assert.equal(new URL(page.url()).pathname, '/login');
      await page.reload();
      assert.ok(!(await page.textContent('body')).includes(email), 'reload showed protected content');
      await ctx.close();
    });
  });
}
