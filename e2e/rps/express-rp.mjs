// A relying party as people write one with express-openid-connect (Auth0's Express SDK): the
// code flow with PKCE, RS256 ID tokens, RP-initiated logout (`idpLogout`) and back-channel
// logout into a store. The store is the app's own (a Map with the express-session store
// interface the SDK asks for); everything else is the SDK's.
//
// `logoutTokens` keeps what arrived at its back-channel route (the body, untouched) so a test
// can replay one. The SDK has no front-channel logout: `/frontchannel-logout` only records what
// signoff's signed-out page loaded in a frame (`frontchannel`: iss and sid).

import express from 'express';
import eoc from 'express-openid-connect';
import { randomBytes } from 'node:crypto';

const { auth, requiresAuth } = eoc;

/** The express-session store interface over a Map, with expiry. */
class MapStore {
  constructor() { this.map = new Map(); }
  get(key, cb) {
    const entry = this.map.get(key);
    if (entry && entry.cookie?.expires && entry.cookie.expires < Date.now()) {
      this.map.delete(key);
      return cb(null, undefined);
    }
    cb(null, entry);
  }
  set(key, value, cb) { this.map.set(key, value); cb(null); }
  destroy(key, cb) { this.map.delete(key); cb(null); }
}

export async function startExpressRp({ issuer, clientId, clientSecret, host = '127.0.0.1', port }) {
  const base = `http://${host}:${port}`;
  const app = express();
  const logoutTokens = [];
  const frontchannel = [];
  app.get('/frontchannel-logout', (req, res) => {
    frontchannel.push({ iss: req.query.iss, sid: req.query.sid });
    res.set('cache-control', 'no-store').send('<!doctype html><title>signed out</title>');
  });
  app.use(express.urlencoded({ extended: false }));
  app.post('/backchannel-logout', (req, _res, next) => {
    if (typeof req.body?.logout_token === 'string') logoutTokens.push(req.body.logout_token);
    next();
  });
  app.use(auth({
    issuerBaseURL: issuer,
    baseURL: base,
    clientID: clientId,
    clientSecret,
    secret: randomBytes(32).toString('hex'),
    authRequired: false,
    idpLogout: true,
    routes: { postLogoutRedirect: '/bye' },
    authorizationParams: { response_type: 'code', scope: 'openid email' },
    backchannelLogout: { store: new MapStore() },
    // Its own cookie names, should another app of the suite share its host.
    session: { name: 'express_rp' },
    transactionCookie: { name: 'express_rp_auth' },
  }));
  app.get('/', requiresAuth(), (req, res) => {
    const { email, sid } = req.oidc.idTokenClaims;
    res.send(`<main><p id="who">Signed in as ${escape(email)} (sid ${escape(sid)})</p><a id="logout" href="/logout">Log out</a></main>`);
  });
  app.get('/bye', (_req, res) => res.send('<main><p id="bye">Signed out of the Express app.</p></main>'));
  const server = await new Promise((resolve, reject) => {
    const s = app.listen(port, host, () => resolve(s));
    s.once('error', reject);
  });
  return {
    base,
    logoutTokens,
    frontchannel,
    stop: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

function escape(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
