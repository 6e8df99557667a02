// Two devices (two browser contexts) signed in as one user.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { suite, register, signIn, scenario } from '../lib/harness.mjs';

const t = suite();

const UA_LAPTOP = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36';
const UA_PHONE = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1';

async function twoDevices(email) {
  await register(t.server, email);
  const laptop = await t.browser.newContext({ userAgent: UA_LAPTOP });
  const phone = await t.browser.newContext({ userAgent: UA_PHONE });
  const a = await laptop.newPage();
  const b = await phone.newPage();
  await signIn(a, t.server, email);
  await signIn(b, t.server, email);
  return { laptop, phone, a, b };
}

test('logging out on one device leaves the other signed in', () =>
  scenario('one-device-logout', () => [t.browser], async () => {
    const { laptop, phone, a, b } = await twoDevices('devices1@example.com');
    await Promise.all([a.waitForURL(/\/login\?logged_out=1/), a.click('button:text-is("Sign out")')]);
    assert.match(await a.textContent('main'), /You have been signed out/);
    await b.reload();
    assert.equal(new URL(b.url()).pathname, '/app');
    assert.match(await b.textContent('main'), /devices1@example\.com/);
    await laptop.close();
    await phone.close();
  }));

test('"log out everywhere" on one device sends the other to /login by itself within 2 s', () =>
  scenario('everywhere', () => [t.browser], async () => {
    const { laptop, phone, a, b } = await twoDevices('devices2@example.com');
    // Give the phone's event stream a moment to connect.
    await b.waitForFunction(() => window.signoff && true);
    await b.waitForTimeout(300);
    const started = Date.now();
    await a.click('button:text-is("Sign out everywhere")');
    await b.waitForURL(/\/login\?revoked=1/, { timeout: 2000 });
    const took = Date.now() - started;
    assert.ok(took <= 2000, `took ${took} ms`);
    assert.match(await b.textContent('main'), /signed out because this session was ended elsewhere/);
    await a.waitForURL(/\/login/);
    await laptop.close();
    await phone.close();
  }));

test('the sessions page lists both devices with their browsers, and revoking one works', () =>
  scenario('sessions-page', () => [t.browser], async () => {
    const { laptop, phone, a, b } = await twoDevices('devices3@example.com');
    await a.goto(`${t.server.base}/app/sessions`);
    const rows = a.locator('li.device');
    assert.equal(await rows.count(), 2);
    const text = await a.textContent('ul.devices');
    assert.match(text, /Chrome on Linux/);
    assert.match(text, /Safari on iPhone/);
    assert.match(await a.textContent('li.device.current'), /this device/);
    await b.waitForTimeout(300);
    const other = rows.filter({ hasNotText: 'this device' });
    await Promise.all([a.waitForURL(/\/app\/sessions\?revoked=1/), other.locator('button').click()]);
    assert.equal(await a.locator('li.device').count(), 1);
    // The revoked device leaves by itself.
    await b.waitForURL(/\/login\?revoked=1/, { timeout: 2000 });
    await laptop.close();
    await phone.close();
  }));
