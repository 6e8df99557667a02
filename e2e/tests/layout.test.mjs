// Every page of the demo at phone size (390 px) and laptop size (1280 px): none scrolls
// sideways, and each is saved as a screenshot in e2e/artifacts/pages/ (NAME-390.png,
// NAME-1280.png) for a person to look at. The pages: sign-in and registration, the app, the
// devices, security (also with an error on a form), the sign-out page, the password-reset
// form, a reset link and an e-mail confirmation link, the development inbox with mail in it,
// and the error pages (a mistyped address, a refused form).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { suite, register, signIn, scenario, artifacts, PASSWORD } from '../lib/harness.mjs';

const t = suite();
const out = join(artifacts, 'pages');
// A long address: the header and the pages must wrap it, not scroll.
const EMAIL = 'ada.lovelace.analytical.engine@a-rather-long-domain-name.example.com';
const WIDTHS = [390, 1280];

/** Whether the page scrolls sideways at its viewport's width, and what sticks out. */
async function overflow(page) {
  return page.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const wide = document.documentElement.scrollWidth > width;
    const culprits = [];
    for (const el of document.querySelectorAll('body *')) {
      const r = el.getBoundingClientRect();
      if (r.right > width + 0.5 && r.width > 0) culprits.push(`${el.tagName.toLowerCase()}.${el.className} (${Math.round(r.right)} px)`);
      if (culprits.length > 5) break;
    }
    return { wide, width, scrollWidth: document.documentElement.scrollWidth, culprits };
  });
}

test('no page scrolls sideways at 390 px or 1280 px, and each is photographed', () =>
  scenario('layout', () => [t.browser], async () => {
    mkdirSync(out, { recursive: true });
    const base = t.server.base;
    await register(t.server, EMAIL);
    // Mail in the inbox: a password reset (its link) and a change of address (its link).
    const ctx = await t.browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await ctx.newPage();
    await signIn(page, t.server, EMAIL);
    await page.goto(`${base}/app/security`);
    await page.fill('form[action="/auth/email"] input[name=new_email]', 'ada.new.address.for.layout.tests@a-rather-long-domain-name.example.com');
    await page.fill('form[action="/auth/email"] input[name=current_password]', PASSWORD);
    await Promise.all([page.waitForURL(/changed=email_pending/), page.click('form[action="/auth/email"] button')]);
    const reset = await fetch(`${base}/auth/password-reset`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ email: EMAIL }),
    });
    assert.equal(reset.status, 202);
    let confirmLink, resetLink;
    for (let i = 0; i < 100 && !(confirmLink && resetLink); i++) {
      await page.goto(`${base}/dev/mail`);
      confirmLink = await page.locator('a[href*="/auth/email/confirm?token="]').first().getAttribute('href').catch(() => null);
      resetLink = await page.locator('a[href*="/auth/password-reset/confirm?token="]').first().getAttribute('href').catch(() => null);
      if (!(confirmLink && resetLink)) await page.waitForTimeout(100);
    }
    assert.ok(confirmLink && resetLink, 'both links arrived in the development inbox');

    // name -> how to get there (signed in unless said otherwise).
    const pages = {
      app: async (p) => p.goto(`${base}/app`),
      devices: async (p) => p.goto(`${base}/app/sessions`),
      security: async (p) => p.goto(`${base}/app/security`),
      'security-error': async (p) => {
        await p.goto(`${base}/app/security`);
        await p.fill('form[action="/auth/password"] input[name=current_password]', 'not the password at all');
        await p.fill('form[action="/auth/password"] input[name=new_password]', 'a new and long passphrase');
        await Promise.all([p.waitForLoadState('load'), p.click('form[action="/auth/password"] button')]);
        await p.waitForSelector('.notice.error');
      },
      inbox: async (p) => p.goto(`${base}/dev/mail`),
      'email-confirm': async (p) => p.goto(confirmLink),
      'sign-out': async (p) => p.goto(`${base}/auth/logout`),
      'not-found': async (p) => p.goto(`${base}/no/such/page`),
      'refused-form': async (p) => {
        await p.goto(`${base}/app/sessions`);
        await p.evaluate(() => {
          const form = document.querySelector('form[action="/auth/logout"]');
          form.querySelector('input[name=csrf_token]').value = 'stale';
          HTMLFormElement.prototype.submit.call(form);
        });
        await p.waitForSelector('h1:text("This form could not be sent")');
      },
    };
    const signedOut = {
      login: async (p) => p.goto(`${base}/login`),
      'login-error': async (p) => {
        await p.goto(`${base}/login`);
        await p.fill('input[name=email]', EMAIL);
        await p.fill('input[name=password]', 'not the password at all');
        await Promise.all([p.waitForLoadState('load'), p.click('form[action="/auth/login"] button')]);
        await p.waitForSelector('.notice.error');
        // The address bar is the form's own page again: a reload does not post.
        assert.equal(new URL(p.url()).pathname, '/login');
      },
      register: async (p) => p.goto(`${base}/register`),
      'password-reset': async (p) => p.goto(`${base}/auth/password-reset`),
      'reset-link': async (p) => p.goto(resetLink),
    };
    const problems = [];
    for (const width of WIDTHS) {
      const viewport = { width, height: width < 500 ? 844 : 800 };
      const inCtx = await t.browser.newContext({ viewport, isMobile: width < 500, hasTouch: width < 500 });
      const p = await inCtx.newPage();
      await signIn(p, t.server, EMAIL);
      const outCtx = await t.browser.newContext({ viewport, isMobile: width < 500, hasTouch: width < 500 });
      const q = await outCtx.newPage();
      for (const [set, target] of [[pages, p], [signedOut, q]]) {
        for (const [name, go] of Object.entries(set)) {
          await go(target);
          const o = await overflow(target);
          await target.screenshot({ path: join(out, `${name}-${width}.png`), fullPage: true });
          if (o.wide) problems.push(`${name} at ${width} px is ${o.scrollWidth} px wide: ${o.culprits.join(', ')}`);
        }
      }
      await inCtx.close();
      await outCtx.close();
    }
    await ctx.close();
    assert.deepEqual(problems, [], 'pages that scroll sideways');
  }));
