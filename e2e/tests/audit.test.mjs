// `signoff audit` against real apps whose logout nobody here wrote, with verdicts known from
// their frameworks' documented behaviour: an express-session app with the tutorial logout
// (clears the cookie, answers GET), Flask-Login with remember-me (a signed-cookie session and a
// remember token that outlive logout), Django 5's own LoginView/LogoutView (POST-only logout with
// a CSRF token, no Clear-Site-Data; and a token API whose tokens end with the session), and
// signoff's own demo, which must pass every check that applies. Each audit runs the binary as a
// user would, with a config file, and reads its JSON report; the four run side by side (each its
// own app and its own browser).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync, readdirSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startServer, register, root, PASSWORD } from '../lib/harness.mjs';

const binary = process.env.SIGNOFF_BIN || join(root, 'target', 'debug', 'signoff');
const apps = join(root, 'e2e', 'audit-apps');

/** Starts an app that prints "ready" once it listens; returns a stopper. */
async function startApp(command, args, cwd) {
  const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stderr.on('data', (d) => { out += d; });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args[0]} did not start: ${out}`)), 30_000);
    child.stdout.on('data', (d) => { if (String(d).includes('ready')) { clearTimeout(timer); resolve(); } });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${args[0]} exited (${code}): ${out}`)); });
  });
  return () => { child.kill('SIGTERM'); };
}

/** Runs `signoff audit` with `config`; returns its exit code, stdout and JSON report. */
function audit(config) {
  const dir = mkdtempSync(join(tmpdir(), 'audit-test-'));
  writeFileSync(join(dir, 'app.toml'), config);
  const args = ['audit', '--config', join(dir, 'app.toml'), '--json', join(dir, 'report.json'), '--html', join(dir, 'report.html')];
  return new Promise((resolve) => {
    execFile(binary, args, { timeout: 240_000 }, (error, stdout, stderr) => {
      const code = error ? error.code : 0;
      let report = null;
      let html = '';
      try {
        report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
        html = readFileSync(join(dir, 'report.html'), 'utf8');
      } catch { /* no report: the code and stderr say why */ }
      rmSync(dir, { recursive: true, force: true });
      resolve({ code, stdout, stderr, report, html });
    });
  });
}

function config(base, { login, fields, protectedUrl, expect, page, selector, everywhere }) {
  const f = Object.entries(fields).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join(', ');
  let toml = `base_url = "${base}"\n[login]\nurl = "${login}"\nfields = { ${f} }\n`
    + `[protected]\nurl = "${protectedUrl}"\nexpect = ${JSON.stringify(expect)}\n`
    + `[logout]\npage = "${page}"\nselector = ${JSON.stringify(selector)}\n`;
  if (everywhere) toml += `[everywhere]\npage = "${page}"\nselector = ${JSON.stringify(everywhere)}\n`;
  return toml;
}

function verdicts(result) {
  assert.ok(result.report, `no report (exit ${result.code}): ${result.stderr}`);
  return Object.fromEntries(result.report.checks.map((c) => [c.id, c.status]));
}

const IDS = ['server_invalidation', 'cookie_cleared', 'post_only', 'csrf', 'back_button', 'clear_site_data',
  'storage_cleared', 'bearer_revoked', 'refresh_revoked', 'remember_revoked', 'fixation', 'redirect_safe', 'everywhere'];

test('signoff audit finds what is wrong with real apps\' logouts, and nothing with signoff\'s', { timeout: 600_000 }, async () => {
  const ports = [await freePort(), await freePort(), await freePort()];
  const stops = [];
  const server = await startServer();
  // A third party the express app's page loads from: the audit must let nothing reach it.
  const reached = [];
  const tracker = createServer((req, res) => { reached.push(`${req.method} ${req.url}`); res.end(); });
  await new Promise((r) => tracker.listen(0, '127.0.0.1', r));
  const trackerUrl = `http://127.0.0.1:${tracker.address().port}`;
  const profilesBefore = readdirSync(tmpdir()).filter((n) => n.startsWith('signoff-audit-'));
  try {
    stops.push(await startApp('node', [join(apps, 'express_session_app.mjs'), String(ports[0]), trackerUrl], join(root, 'e2e')));
    stops.push(await startApp('python3', [join(apps, 'flask_login_app.py'), String(ports[1])], apps));
    stops.push(await startApp('python3', [join(apps, 'django_app.py'), String(ports[2])], apps));
    await register(server, 'ada@example.com');
    const plain = { username: 'ada', password: PASSWORD };
    const [express, flask, django, signoff] = await Promise.all([
      audit(config(`http://127.0.0.1:${ports[0]}`, {
        login: '/login', fields: plain, protectedUrl: '/account', expect: 'Signed in as ada', page: '/account', selector: '#logout',
        everywhere: '#everywhere',
      })),
      audit(config(`http://127.0.0.1:${ports[1]}`, {
        login: '/login', fields: { ...plain, remember: '1' }, protectedUrl: '/account', expect: 'Signed in as ada', page: '/account', selector: '#logout',
      })),
      audit(config(`http://127.0.0.1:${ports[2]}`, {
        login: '/login/', fields: plain, protectedUrl: '/account/', expect: 'Signed in as ada', page: '/account/', selector: '#logout',
      })),
      audit(config(server.base, {
        login: '/login',
        fields: { email: 'ada@example.com', password: PASSWORD, remember_me: '1' },
        protectedUrl: '/app',
        expect: 'ada@example.com',
        page: '/app',
        selector: 'form:has(input[name=scope][value=local]) button',
        everywhere: 'form:has(input[name=scope][value=global]) button',
      })),
    ]);

    // Every report holds every check, each with a verdict and a sentence.
    for (const r of [express, flask, django, signoff]) {
      assert.deepEqual(r.report?.checks.map((c) => c.id), IDS, r.stderr);
      for (const c of r.report.checks) {
        assert.ok(['pass', 'fail', 'warn', 'skip'].includes(c.status) && c.detail.length > 10, JSON.stringify(c));
        if (c.status === 'fail') assert.ok(c.fix && c.evidence.length > 0, `a failure without a fix or evidence: ${JSON.stringify(c)}`);
        if (c.status === 'warn') assert.ok(c.fix, `a warning without a fix: ${JSON.stringify(c)}`);
      }
      assert.match(r.html, /<meta name="viewport"/);
      // Nothing went wrong along the way: every browser event the audit reads read (an event
      // that does not would also have ended the audit without a report).
      assert.doesNotMatch(r.stderr, /WARN|ERROR/, r.stderr);
      // The exit code says whether a check failed.
      assert.equal(r.code, r.report.summary.fail > 0 ? 1 : 0, r.stdout);
      // No output holds a whole secret: the password, a cookie or a token (each 43 or more
      // characters of base64url with digits among them; the report shows their first six).
      for (const out of [r.stdout, r.html, JSON.stringify(r.report)]) {
        assert.ok(!out.includes(PASSWORD), 'the password in the output');
        const whole = [...out.matchAll(/[A-Za-z0-9_%+/.-]{40,}/g)].map((m) => m[0]).filter((w) => /\d/.test(w));
        assert.deepEqual(whole, [], 'a whole secret in the output');
      }
    }
    // Nothing reached the third party, and no browser profile was left behind.
    assert.deepEqual(reached, [], 'the audit let a request through to another origin');
    assert.deepEqual(readdirSync(tmpdir()).filter((n) => n.startsWith('signoff-audit-')), profilesBefore);

    // express-session, tutorial logout: the session lives on, GET logs out, the API tokens
    // live on (and the refresh token stays in localStorage), `next` leads anywhere, and "log out
    // everywhere" ends this browser's session only.
    const e = verdicts(express);
    assert.equal(e.server_invalidation, 'fail', express.stdout);
    assert.equal(e.post_only, 'fail', express.stdout);
    assert.equal(e.cookie_cleared, 'pass', express.stdout);
    assert.equal(e.bearer_revoked, 'fail', express.stdout);
    assert.equal(e.refresh_revoked, 'fail', express.stdout);
    assert.equal(e.storage_cleared, 'fail', express.stdout);
    assert.equal(e.redirect_safe, 'fail', express.stdout);
    assert.equal(e.everywhere, 'fail', express.stdout);
    // express-session without `regenerate`: the cookie of the sign-in page signs in.
    assert.equal(e.fixation, 'fail', express.stdout);
    // The page came back from the back/forward cache, and the report says it was the browser's.
    assert.equal(e.back_button, 'fail', express.stdout);
    assert.match(express.report.checks.find((c) => c.id === 'back_button').browser_note, /back\/forward cache/);
    assert.equal(express.code, 1, 'a failed check exits 1');
    assert.match(express.stdout, /server_invalidation\s+fail\s+high/);

    // Flask-Login with remember-me: the old signed cookie and the remember token both sign in.
    const f = verdicts(flask);
    assert.equal(f.server_invalidation, 'fail', flask.stdout);
    assert.equal(f.remember_revoked, 'fail', flask.stdout);
    // Its logout takes any POST: from another site, with the cookie (Chromium sends a cookie
    // without SameSite on a cross-site POST in its first two minutes), it logs out.
    assert.equal(f.csrf, 'fail', flask.stdout);
    assert.equal(flask.code, 1);

    // Django 5: the session ends and GET does not log out; no Clear-Site-Data is flagged.
    const d = verdicts(django);
    assert.equal(d.server_invalidation, 'pass', django.stdout);
    assert.equal(d.post_only, 'pass', django.stdout);
    assert.equal(d.csrf, 'pass', django.stdout);
    assert.equal(d.clear_site_data, 'warn', django.stdout);
    assert.equal(d.redirect_safe, 'pass', django.stdout);
    // Its token API ties each token to the session, which the logout flushes: the bearer
    // token and the refresh call, both proved to work before logout, are refused after it.
    assert.equal(d.bearer_revoked, 'pass', django.stdout);
    assert.equal(d.refresh_revoked, 'pass', django.stdout);

    // signoff's demo: every check that applies passes (no bearer or refresh calls in a
    // cookie-only page: those are skipped, with the reason).
    const s = verdicts(signoff);
    // Its own check refused the cross-site POST even with the cookie: the report says so.
    assert.match(signoff.report.checks.find((c) => c.id === 'csrf').browser_note, /refused/);
    for (const id of IDS) {
      const expected = ['bearer_revoked', 'refresh_revoked'].includes(id) ? 'skip' : 'pass';
      assert.equal(s[id], expected, `${id}: ${signoff.stdout}`);
    }
    assert.equal(signoff.code, 0, signoff.stdout);
  } finally {
    for (const stop of stops) stop();
    tracker.close();
    await server.stop();
  }
});

test('signoff audit says what is wrong with a config, and exits 2', async () => {
  const r = await audit('base_url = "localhost:8000"\n');
  assert.equal(r.code, 2);
  assert.equal(r.report, null);
  assert.match(r.stderr, /app\.toml/);
  assert.match(r.stderr, /login|base_url/);
});
