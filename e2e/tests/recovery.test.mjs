// The e-mail flows as a person goes through them: "Forgot password?" from the sign-in page to
// signing in with the new password, and a change of address waiting for its link, with the
// mail read from the development inbox (/dev/mail).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { suite, register, signIn, scenario, PASSWORD } from '../lib/harness.mjs';

const t = suite();

/** Opens the development inbox until a link matching `kind` is there, and follows it. */
async function followMailedLink(page, kind) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    await page.goto(`${t.server.base}/dev/mail`);
    const link = page.locator(`a[href*="${kind}?token="]`).first();
    if (await link.count()) {
      await Promise.all([page.waitForURL(new RegExp(`${kind}\\?token=`)), link.click()]);
      return;
    }
    assert.ok(Date.now() < deadline, `no ${kind} link in the inbox`);
    await page.waitForTimeout(200);
  }
}

test('"Forgot password?" sets a new password, and a second browser\'s open page hears it ended', () =>
  scenario('forgot-password', () => [t.browser], async () => {
    const email = 'forgot@example.com';
    await register(t.server, email);
    const otherContext = await t.browser.newContext();
    const other = await otherContext.newPage();
    await signIn(other, t.server, email);
    await other.waitForFunction(() => window.signoff && true);
    await other.waitForTimeout(300); // its event stream connects

    const meContext = await t.browser.newContext();
    const me = await meContext.newPage();
    await me.goto(`${t.server.base}/login`);
    await Promise.all([me.waitForURL(/\/auth\/password-reset$/), me.click('a:text-is("Forgot password?")')]);
    await me.fill('input[name=email]', email);
    await Promise.all([me.waitForURL(/\/auth\/password-reset\?sent=1/), me.click('button:text-is("Mail me a link")')]);
    assert.match(await me.textContent('main'), /If an account has that address, a link is on its way/);
    assert.equal(await me.locator('a[href="/dev/mail"]').count(), 1, 'the development inbox is linked');
    assert.equal(new URL(other.url()).pathname, '/app', 'asking for a link ends nothing');

    await followMailedLink(me, '/auth/password-reset/confirm');
    await me.fill('input[name=new_password]', 'a brand new passphrase');
    await Promise.all([me.waitForURL(/\/login\?reset=1/), me.click('button:text-is("Set new password")')]);
    assert.match(await me.textContent('main'), /Password changed, and every device signed out/);
    // The other browser's open page leaves by itself, told by its event stream.
    await other.waitForURL(/\/login\?revoked=1/, { timeout: 2000 });

    // The old password is refused; the new one signs in.
    await me.fill('input[name=email]', email);
    await me.fill('input[name=password]', PASSWORD);
    await Promise.all([me.waitForLoadState('load'), me.click('form[action="/auth/login"] button[type=submit]')]);
    assert.match(await me.textContent('main'), /E-mail or password is wrong\./);
    await me.fill('input[name=email]', email);
    await me.fill('input[name=password]', 'a brand new passphrase');
    await Promise.all([me.waitForURL(`${t.server.base}/app`), me.click('form[action="/auth/login"] button[type=submit]')]);
    assert.match(await me.textContent('main'), /forgot@example\.com/);
    // The link was used: following it again says so at once, with no form to fill in vain.
    await followMailedLink(me, '/auth/password-reset/confirm');
    await me.waitForSelector('a[href="/auth/password-reset"]');
    assert.match(await me.textContent('main'), /cannot be used any more/);
    assert.equal(await me.locator('input[name=new_password]').count(), 0, 'no form for a spent link');
    await otherContext.close();
    await meContext.close();
  }));

test('a change of address waits for its link, and times read as people say them', () =>
  scenario('email-change', () => [t.browser], async () => {
    const email = 'moving@example.com';
    await register(t.server, email);
    const context = await t.browser.newContext({ timezoneId: 'Asia/Tokyo' });
    const page = await context.newPage();
    await signIn(page, t.server, email);
    const signedIn = page.locator('dd time').first();
    assert.equal(await signedIn.textContent(), 'just now');
    const hover = await signedIn.getAttribute('title');
    assert.ok(hover && !hover.endsWith('Z'), `local time on hover, not RFC 3339: ${hover}`);
    const exact = new Date(await signedIn.getAttribute('datetime'));
    assert.equal(hover, await page.evaluate((at) => new Date(at).toLocaleString(), exact.toISOString()));

    await page.goto(`${t.server.base}/app/security`);
    await page.fill('form[action="/auth/email"] input[name=new_email]', 'moved@example.com');
    await page.fill('form[action="/auth/email"] input[name=current_password]', PASSWORD);
    await Promise.all([page.waitForURL(/changed=email_pending/), page.click('button:text-is("Change e-mail")')]);
    assert.match(await page.textContent('main'), /A confirmation link was mailed to the new address/);
    // The page shows the change waiting, once the mail (and its link) went out.
    const deadline = Date.now() + 10_000;
    while (!(await page.locator('.pending').count())) {
      assert.ok(Date.now() < deadline, 'no pending change shown');
      await page.waitForTimeout(200);
      await page.reload();
    }
    assert.match(await page.textContent('.pending'), /Waiting for confirmation: moved@example\.com\. The link mailed there stops working in 1 hour/);
    assert.match(await page.textContent('header'), /moving@example\.com/, 'nothing changed yet');

    await followMailedLink(page, '/auth/email/confirm');
    await Promise.all([page.waitForURL(/\/app\/security\?changed=email/), page.click('button:text-is("Confirm new address")')]);
    assert.match(await page.textContent('header'), /moved@example\.com/, 'this browser stays signed in, as the new address');
    assert.equal(await page.locator('.pending').count(), 0);
    await context.close();
  }));
