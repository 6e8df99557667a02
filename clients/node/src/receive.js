// Receiving signoff's logout notifications: OIDC Back-Channel Logout tokens and Standard
// Webhooks. Both are checked before anything is believed; both may arrive more than once (a
// delivery is retried until it is answered with a 2xx), so a repeat is recognised by its `jti`
// or `webhook-id` and answered 2xx without running the handler again.
//
// Answers: 2xx once handled (or a repeat of one handled); 400 for a notification that does not
// verify (signoff fails the delivery and stops); 503 when this side cannot decide or act right
// now (the JWKS cannot be fetched, the handler threw), so signoff tries again later.

import { createHmac, timingSafeEqual } from 'node:crypto';
import { createRemoteJWKSet, jwtVerify, errors } from 'jose';
import { describe, expectations, mismatch } from './metadata.js';

const BACKCHANNEL_EVENT = 'http://schemas.openid.net/event/backchannel-logout';
// Largest notification body read; signoff's are a few hundred bytes.
const MAX_BODY = 64 * 1024;
// Ids remembered to recognise repeats; the oldest go first past this.
const MAX_SEEN = 100_000;
// How long an id is remembered: signoff retries a delivery for 26 hours after it was written.
const REMEMBER_SEC = 27 * 3600;

/** Why a notification was refused: `code` is "invalid" (400) or "unavailable" (503). */
export class ReceiveError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'ReceiveError';
    this.code = code;
  }
}

/** Ids already handled, each until its expiry (Unix seconds); bounded. */
class Seen {
  constructor() {
    this.ids = new Map();
  }
  has(id) {
    const until = this.ids.get(id);
    return until !== undefined && until > Date.now() / 1000;
  }
  add(id, until) {
    const now = Date.now() / 1000;
    for (const [k, u] of this.ids) {
      if (u > now && this.ids.size < MAX_SEEN) break;
      this.ids.delete(k);
    }
    this.ids.set(id, until);
  }
}

function header(headers, name) {
  const v = typeof headers?.get === 'function' ? headers.get(name) : headers?.[name];
  return Array.isArray(v) ? v[0] : v ?? undefined;
}

function bytesOf(body) {
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  throw new TypeError('the raw request body (a string or Buffer) is needed to check a webhook signature');
}

/**
 * Checks a Standard Webhooks signature and returns the parsed payload.
 *
 * `secrets` is one `whsec_…` secret or several (during a rotation, the old and the new: signoff
 * signs with both for the overlap). `headers` is a plain object with lower-case names or a
 * `Headers`; `body` the raw body, exactly as received. Throws `ReceiveError("invalid")`.
 */
export function verifyWebhook(secrets, headers, body, { toleranceSec = 300, now = Date.now() } = {}) {
  const id = header(headers, 'webhook-id');
  const timestamp = header(headers, 'webhook-timestamp');
  const signature = header(headers, 'webhook-signature');
  if (!id || !timestamp || !signature) throw new ReceiveError('invalid', 'missing webhook headers');
  if (!/^\d{1,12}$/.test(timestamp)) throw new ReceiveError('invalid', 'bad webhook-timestamp');
  if (Math.abs(now / 1000 - Number(timestamp)) > toleranceSec) {
    throw new ReceiveError('invalid', 'webhook-timestamp outside the tolerance');
  }
  const raw = bytesOf(body);
  const signed = Buffer.concat([Buffer.from(`${id}.${timestamp}.`, 'utf8'), raw]);
  const presented = signature
    .split(' ')
    .filter((s) => s.startsWith('v1,'))
    .map((s) => Buffer.from(s.slice(3), 'base64'));
  const keys = (Array.isArray(secrets) ? secrets : [secrets]).map((s) => {
    if (typeof s !== 'string' || !s.startsWith('whsec_')) throw new TypeError('a webhook secret starts with whsec_');
    return Buffer.from(s.slice('whsec_'.length), 'base64');
  });
  if (keys.length === 0) throw new TypeError('no webhook secret');
  const ok = keys.some((key) => {
    const expected = createHmac('sha256', key).update(signed).digest();
    return presented.some((p) => p.length === expected.length && timingSafeEqual(p, expected));
  });
  if (!ok) throw new ReceiveError('invalid', 'no valid signature');
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    throw new ReceiveError('invalid', 'the body is not JSON');
  }
}

/**
 * Checks OIDC Back-Channel Logout tokens from signoff: signature (RS256, ES256 or EdDSA, as the
 * client registered its `id_token_signed_response_alg`; each key of signoff's JWKS verifies only
 * under its own `alg`), `typ: logout+jwt`, `iss`, `aud` = your client id, `iat`, `exp`, `jti`, the back-channel
 * logout event, `sid`, and no `nonce`; `sub` when present (an app that signs users in is told
 * only the `sid` of the sign-in its ID token named; a service that signs nobody in is told both). A token signed with a key not seen yet makes
 * it fetch the key set again, at most every `jwksCooldownMs` (5 s: logout tokens are rare, and
 * until then such a token is answered 503 and retried by signoff).
 */
export function createLogoutTokenVerifier({ url, issuer, clientId, leewaySec = 10, jwksCooldownMs = 5_000 }) {
  const base = String(url).replace(/\/+$/, '');
  if (!clientId) throw new TypeError('clientId is required');
  // The issuer: as set, or learned from signoff (its public URL), so that `url` may be internal.
  const expect = expectations(base, { issuer, audience: clientId });
  const jwks = createRemoteJWKSet(new URL(`${base}/.well-known/jwks.json`), {
    cooldownDuration: jwksCooldownMs,
    timeoutDuration: 5000,
    headers: { 'cache-control': 'no-cache' },
  });
  return async function verifyLogoutToken(token) {
    if (typeof token !== 'string' || token.length === 0 || token.length > 8192) {
      throw new ReceiveError('invalid', 'no logout token');
    }
    const expected = expect.known ?? (await expect.learn());
    // Without knowing the issuer there is no verdict: 503, and signoff tries again.
    if (!expected) throw new ReceiveError('unavailable', "signoff's configuration cannot be read now");
    let payload;
    try {
      ({ payload } = await jwtVerify(token, jwks, {
        issuer: expected.issuer,
        audience: clientId,
        algorithms: ['RS256', 'ES256', 'EdDSA'],
        typ: 'logout+jwt',
        clockTolerance: leewaySec,
        maxTokenAge: 300,
        requiredClaims: ['iss', 'aud', 'iat', 'exp', 'jti', 'events', 'sid'],
      }));
    } catch (e) {
      // No verdict without the key: a key signoff began to sign with since the last fetch (the
      // key set is refetched at most every jwksCooldownMs), or a key set that cannot be had.
      // Answered 503, so signoff tries again rather than dropping the logout.
      if (
        e instanceof errors.JWKSNoMatchingKey ||
        e instanceof errors.JWKSInvalid ||
        e instanceof errors.JWKSTimeout ||
        e?.code === 'ERR_JOSE_GENERIC' ||
        e instanceof TypeError
      ) {
        throw new ReceiveError('unavailable', 'the signing key cannot be had now');
      }
      const wrong = mismatch(e, expected);
      if (wrong) {
        const message = `the logout token's ${describe(wrong, 'receiver')}`;
        console.warn(`signoff-verify: refused a logout token: ${message} (check the receiver's url, issuer and clientId)`);
        throw new ReceiveError('invalid', message);
      }
      throw new ReceiveError('invalid', e?.code ?? 'invalid logout token');
    }
    const event = payload.events?.[BACKCHANNEL_EVENT];
    if (typeof event !== 'object' || event === null || Array.isArray(event)) {
      throw new ReceiveError('invalid', 'not a back-channel logout event');
    }
    if ('nonce' in payload) throw new ReceiveError('invalid', 'a logout token carries no nonce');
    if (typeof payload.sid !== 'string' || typeof payload.jti !== 'string' || ('sub' in payload && typeof payload.sub !== 'string')) {
      throw new ReceiveError('invalid', 'sid, jti and sub (when present) must be strings');
    }
    return payload;
  };
}

// The body of a request, read whole (at most MAX_BODY bytes), unless a body parser already did.
async function rawBody(req) {
  if (typeof req.body === 'string' || req.body instanceof Uint8Array) return req.body;
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY) throw new ReceiveError('invalid', 'body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function answer(res, status, body) {
  res.statusCode = status;
  res.setHeader('cache-control', 'no-store');
  if (body === undefined) return res.end();
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(body));
}

function refuse(res, e) {
  // OAuth's error form (OIDC Back-Channel Logout 2.8): signoff shows the description in its
  // deliveries view, so a configuration fault is seen where it is sent from.
  if (e instanceof ReceiveError && e.code === 'invalid') {
    return answer(res, 400, { error: 'invalid_request', error_description: e.message });
  }
  if (!(e instanceof ReceiveError)) console.error('signoff-verify: a logout notification handler failed:', e);
  answer(res, 503, { error: 'temporarily_unavailable' });
}

/**
 * Express/Connect (or plain `node:http`) handler for `backchannel_logout_uri`. Calls
 * `onLogout({ sub, sid, jti, claims })` once per logout token (end your own session for `sid`
 * there); answers 200 when done, 400 for a token that does not verify, 503 if `onLogout` threw
 * (signoff retries). Mount it before any body parser, or after `express.urlencoded()`.
 */
export function logoutReceiver({ onLogout, ...options }) {
  if (typeof onLogout !== 'function') throw new TypeError('onLogout is required');
  const verifyLogoutToken = options.verify ?? createLogoutTokenVerifier(options);
  const seen = new Seen();
  return async (req, res) => {
    try {
      let token;
      if (req.body && typeof req.body === 'object' && !(req.body instanceof Uint8Array)) {
        token = req.body.logout_token;
      } else {
        const type = String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
        if (type !== 'application/x-www-form-urlencoded') throw new ReceiveError('invalid', 'not a form');
        token = new URLSearchParams(bytesOf(await rawBody(req)).toString('utf8')).get('logout_token');
      }
      const claims = await verifyLogoutToken(token);
      if (!seen.has(claims.jti)) {
        await onLogout({ sub: claims.sub, sid: claims.sid, jti: claims.jti, claims });
        seen.add(claims.jti, Date.now() / 1000 + REMEMBER_SEC);
      }
      answer(res, 200);
    } catch (e) {
      refuse(res, e);
    }
  };
}

/**
 * Express/Connect (or plain `node:http`) handler for `webhook_url`. Calls `onEvent(event,
 * { id })` once per `webhook-id` with the verified `{ type, timestamp, data }`; answers 204 when
 * done, 400 for one that does not verify, 503 if `onEvent` threw (signoff retries). It needs
 * the raw body: mount it before `express.json()`, or behind `express.raw()`.
 */
export function webhookReceiver({ secret, secrets, onEvent, toleranceSec = 300 }) {
  if (typeof onEvent !== 'function') throw new TypeError('onEvent is required');
  const keys = secrets ?? secret;
  const seen = new Seen();
  return async (req, res) => {
    try {
      if (req.body && typeof req.body === 'object' && !(req.body instanceof Uint8Array)) {
        throw new Error('the body was parsed before the webhook receiver: mount it before express.json()');
      }
      const event = verifyWebhook(keys, req.headers, await rawBody(req), { toleranceSec });
      const id = req.headers['webhook-id'];
      if (!seen.has(id)) {
        await onEvent(event, { id });
        seen.add(id, Date.now() / 1000 + REMEMBER_SEC);
      }
      answer(res, 204);
    } catch (e) {
      refuse(res, e);
    }
  };
}
