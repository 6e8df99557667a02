// signoff-verify: verify signoff access tokens inside a Node service, revocations included.
//
// A JWT library alone accepts a revoked token until it expires. A verifier also follows
// signoff's revocation feed (GET /revocations/stream, as a registered client) and keeps its
// state in memory: revoked jti, ended sid, each user's minimum tv. It fails closed: once the
// feed has been silent past `staleAfterMs`, every token is refused with code "stale" until the
// feed is back and caught up.

import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify, errors } from 'jose';
import { describe, expectations, mismatch } from './metadata.js';

/**
 * Why a token was refused: `code` is "invalid_token", "revoked" or "stale". A token whose
 * `iss` or `aud` is not the one expected also has `claim`, `found` and `expected`.
 */
export class VerifyError extends Error {
  constructor(code, message, detail) {
    super(message);
    this.name = 'VerifyError';
    this.code = code;
    if (detail) Object.assign(this, detail);
  }
}

// signoff sends a comment every second; this long without a byte and the stream is dead.
const READ_TIMEOUT_MS = 3000;

class FeedState {
  constructor() {
    this.live = newTables();
    this.building = null; // a reset state being received, swapped in at ": current"
    this.position = null; // the last seq received (Last-Event-ID of the next connection)
    this.freshAt = null; // when a stream that had reached ": current" was last heard from
    this.synced = false; // whether the open stream has reached ": current"
    this.closed = false;
  }

  fresh(staleAfterMs) {
    return !this.closed && this.freshAt !== null && performance.now() - this.freshAt <= staleAfterMs;
  }

  revokes(claims) {
    const t = this.live;
    const tv = t.tv.get(claims.sub);
    return t.jti.has(claims.jti) || t.sid.has(claims.sid) || (tv !== undefined && claims.tv < tv.tv);
  }

  // Takes one frame; returns what it means for the keys: null, { added: kid } or
  // { withdrawn: kid }. Throws for an event that cannot be read (the stream is then given up:
  // a revocation must never be passed over).
  frame(frame, retainMs, leewaySec) {
    const now = performance.now();
    if (frame.comment !== undefined) {
      if (frame.comment.startsWith('reset')) {
        this.building = newTables();
        this.position = null;
      } else if (frame.comment === 'current') {
        if (this.building) this.live = this.building;
        this.building = null;
        this.synced = true;
        this.freshAt = now;
        prune(this.live, retainMs, leewaySec);
      } else if (this.synced) {
        this.freshAt = now;
        prune(this.live, retainMs, leewaySec);
      }
      return null;
    }
    const event = JSON.parse(frame.data);
    apply(this.live, event, now);
    if (this.building) apply(this.building, event, now);
    const seq = Number.parseInt(frame.id ?? '', 10);
    if (Number.isSafeInteger(seq)) this.position = seq;
    if (this.synced) this.freshAt = now;
    if (event.type !== 'keys' || typeof event.kid !== 'string') return null;
    return event.withdrawn === true ? { withdrawn: event.kid } : { added: event.kid };
  }
}

function newTables() {
  return { jti: new Map(), sid: new Map(), tv: new Map() };
}

function apply(t, e, now) {
  if (e.type === 'token' && typeof e.jti === 'string') t.jti.set(e.jti, Number(e.exp));
  else if (e.type === 'session' && typeof e.sid === 'string') t.sid.set(e.sid, now);
  else if (e.type === 'user' && typeof e.sub === 'string' && Number.isFinite(e.tv)) {
    const held = t.tv.get(e.sub);
    if (!held || e.tv >= held.tv) t.tv.set(e.sub, { tv: e.tv, at: now });
  }
}

function prune(t, retainMs, leewaySec) {
  const nowSec = Date.now() / 1000;
  const now = performance.now();
  for (const [jti, exp] of t.jti) if (exp + leewaySec <= nowSec) t.jti.delete(jti);
  for (const [sid, at] of t.sid) if (now - at >= retainMs) t.sid.delete(sid);
  for (const [sub, held] of t.tv) if (now - held.at >= retainMs) t.tv.delete(sub);
}

// Splits complete server-sent-event frames off the front of `buf`: [frames, rest].
export function parseFrames(buf) {
  const frames = [];
  let end;
  while ((end = buf.indexOf('\n\n')) !== -1) {
    const block = buf.slice(0, end);
    buf = buf.slice(end + 2);
    let id, event, comment;
    let data = '';
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) comment = line.slice(1).trim();
      else {
        const colon = line.indexOf(':');
        if (colon === -1) continue;
        const key = line.slice(0, colon);
        let value = line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (key === 'id') id = value;
        else if (key === 'event') event = value;
        else if (key === 'data') data += value;
      }
    }
    if (event === 'revocation') frames.push({ id, data });
    else if (event === undefined && comment !== undefined && data === '') frames.push({ comment });
  }
  return [frames, buf];
}

function jwksErrorIsOutage(e) {
  // Could not ask signoff (network, timeout, a non-200 answer): no verdict on the token.
  return e instanceof errors.JWKSTimeout || e?.code === 'ERR_JOSE_GENERIC' || e instanceof TypeError;
}

/**
 * Starts a verifier and resolves once it has caught up with the feed (or once `staleAfterMs`
 * has passed without that: tokens are then refused as stale until it does).
 */
export async function createVerifier(options) {
  const o = {
    url: String(options.url).replace(/\/+$/, ''),
    clientId: options.clientId,
    clientSecret: options.clientSecret,
    staleAfterMs: options.staleAfterMs ?? 3_000,
    jwksCooldownMs: options.jwksCooldownMs ?? 30_000,
    leewaySec: options.leewaySec ?? 10,
    retainMs: options.retainMs ?? 3_600_000,
  };
  // The issuer and audience: as set, or learned from signoff (its public URL and its
  // token_audience), so that the URL given may be an internal one.
  const expect = expectations(o.url, { issuer: options.issuer, audience: options.audience });
  const warned = new Set();
  if (!o.clientId || !o.clientSecret) throw new TypeError('clientId and clientSecret are required');
  const jwks = createRemoteJWKSet(new URL(`${o.url}/.well-known/jwks.json`), {
    cooldownDuration: o.jwksCooldownMs,
    timeoutDuration: 5000,
    // A cache between here and signoff must ask signoff again.
    headers: { 'cache-control': 'no-cache' },
  });
  // Keys the feed said were withdrawn: never trusted again, whatever a JWKS fetched from a
  // lagging node or a cache still lists.
  const withdrawn = new Set();
  if (!o.url.startsWith('https://') && !/^http:\/\/(127\.|localhost|\[::1\])/.test(o.url)) {
    console.warn(`signoff-verify: ${o.url} is plain http: client credentials and keys travel unprotected`);
  }
  const state = new FeedState();
  let controller = null;
  let onFirstSync;
  const firstSync = new Promise((resolve) => (onFirstSync = resolve));
  const basic = 'Basic ' + Buffer.from(`${encodeURIComponent(o.clientId)}:${encodeURIComponent(o.clientSecret)}`).toString('base64');

  // One connection; resolves with whether it reached ": current".
  async function streamOnce() {
    controller = new AbortController();
    const signal = controller.signal;
    let timer = setTimeout(() => controller.abort(), READ_TIMEOUT_MS);
    const rearm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => controller.abort(), READ_TIMEOUT_MS);
    };
    let synced = false;
    try {
      const headers = { authorization: basic, accept: 'text/event-stream' };
      if (state.position !== null) headers['last-event-id'] = String(state.position);
      const res = await fetch(`${o.url}/revocations/stream`, { headers, signal });
      if (!res.ok) {
        console.warn(`signoff-verify: the revocation feed answered ${res.status} (check the client id and secret)`);
        await res.body?.cancel();
        return false;
      }
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      let buf = '';
      for (;;) {
        rearm();
        const { done, value } = await reader.read();
        if (done) return synced;
        buf += decoder.decode(value, { stream: true }).replaceAll('\r', '');
        let frames;
        [frames, buf] = parseFrames(buf);
        for (const f of frames) {
          if (f.comment === 'current') {
            synced = true;
          }
          const change = state.frame(f, o.retainMs, o.leewaySec);
          if (change?.withdrawn) withdrawn.add(change.withdrawn);
          if (change) jwks.reload().catch(() => {});
          if (f.comment === 'current') onFirstSync();
        }
        if (buf.length > 1 << 20) return synced;
      }
    } catch {
      return synced;
    } finally {
      clearTimeout(timer);
      controller.abort();
      state.synced = false;
      state.building = null;
    }
  }

  const following = (async () => {
    let backoff = 100;
    while (!state.closed) {
      await expect.learn();
      if (state.closed) return;
      const synced = await streamOnce();
      if (state.closed) return;
      if (synced) backoff = 100;
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 2000);
    }
  })();

  await Promise.race([firstSync, new Promise((r) => setTimeout(r, o.staleAfterMs).unref())]);

  async function verify(token) {
    if (!state.fresh(o.staleAfterMs)) throw new VerifyError('stale', 'the revocation feed is stale');
    if (typeof token !== 'string' || token.length === 0 || token.length > 4096) {
      throw new VerifyError('invalid_token', 'malformed');
    }
    let kid;
    try {
      ({ kid } = decodeProtectedHeader(token));
    } catch {
      throw new VerifyError('invalid_token', 'malformed');
    }
    if (typeof kid !== 'string' || withdrawn.has(kid)) throw new VerifyError('invalid_token', 'unknown key');
    const expected = expect.known ?? (await expect.learn());
    if (!expected) throw new VerifyError('stale', "signoff's configuration cannot be read");
    let payload;
    try {
      ({ payload } = await jwtVerify(token, jwks, {
        issuer: expected.issuer,
        audience: expected.audience,
        algorithms: ['EdDSA'],
        clockTolerance: o.leewaySec,
        requiredClaims: ['sub', 'exp', 'iat', 'jti', 'sid', 'tv'],
      }));
    } catch (e) {
      if (jwksErrorIsOutage(e)) throw new VerifyError('stale', 'the signing keys cannot be fetched');
      const wrong = mismatch(e, expected);
      if (wrong) {
        const message = `its ${describe(wrong, 'verifier')}`;
        if (!warned.has(message) && warned.size < 16) {
          warned.add(message);
          console.warn(`signoff-verify: refused a token: ${message} (check the verifier's issuer and audience)`);
        }
        throw new VerifyError('invalid_token', `invalid token: ${message}`, wrong);
      }
      throw new VerifyError('invalid_token', e?.code ?? 'invalid');
    }
    if (typeof payload.iat === 'number' && payload.iat > Date.now() / 1000 + o.leewaySec) {
      throw new VerifyError('invalid_token', 'not yet valid');
    }
    // A key withdrawn, or the feed gone silent, while this call waited for the JWKS.
    if (withdrawn.has(kid)) throw new VerifyError('invalid_token', 'unknown key');
    if (!state.fresh(o.staleAfterMs)) throw new VerifyError('stale', 'the revocation feed is stale');
    // What the feed said about a token is kept for retainMs: a longer-lived token could
    // outlive its revocation here.
    if (payload.exp - payload.iat > o.retainMs / 1000) {
      throw new VerifyError('invalid_token', 'lifetime longer than the verifier retains revocations');
    }
    if (state.revokes(payload)) throw new VerifyError('revoked', 'token revoked');
    return payload;
  }

  return {
    verify,
    /** Express (or Connect) middleware: sets `req.auth` to the claims, or answers 401/503. */
    express() {
      return async (req, res, next) => {
        const header = req.headers.authorization ?? '';
        const [scheme, token] = header.split(' ', 2);
        try {
          if (scheme?.toLowerCase() !== 'bearer' || !token) throw new VerifyError('invalid_token', 'no bearer token');
          req.auth = await verify(token.trim());
        } catch (e) {
          const err = e instanceof VerifyError ? e : new VerifyError('invalid_token', 'invalid');
          res.setHeader('cache-control', 'no-store');
          if (err.code === 'stale') {
            res.setHeader('retry-after', '1');
            res.status(503);
          } else {
            res.setHeader('www-authenticate', 'Bearer error="invalid_token"');
            res.status(401);
          }
          res.json({ error: err.code, message: err.message });
          return;
        }
        next();
      };
    },
    /** How many revocation events are held (for metrics and tests). */
    held() {
      return state.live.jti.size + state.live.sid.size + state.live.tv.size;
    },
    /** Stops following the feed; every later verify is refused as stale. */
    async close() {
      state.closed = true;
      state.freshAt = null;
      controller?.abort();
      await following;
    },
  };
}

export { ReceiveError, createLogoutTokenVerifier, logoutReceiver, verifyWebhook, webhookReceiver } from './receive.js';
