// What signoff says its tokens carry (GET /.well-known/signoff-configuration), so that a
// verifier or a receiver needs only a URL of signoff: the issuer and the audience to expect.

const PATH = '/.well-known/signoff-configuration';

/**
 * The issuer and audience to expect: what the options set, the rest learned from signoff at
 * `base` (the first successful read is kept; a failed one is tried again on the next call, at
 * most once a second).
 */
export function expectations(base, { issuer, audience } = {}) {
  let known = issuer !== undefined && audience !== undefined ? { issuer, audience } : null;
  let pending = null;
  let failedAt = -Infinity;
  return {
    /** The expectations if known now, else null. */
    get known() {
      return known;
    },
    /** Resolves with the expectations, or null if signoff cannot be asked now. */
    async learn() {
      if (known) return known;
      if (pending) return pending;
      if (performance.now() - failedAt < 1000) return null;
      pending = (async () => {
        try {
          const res = await fetch(base + PATH, { signal: AbortSignal.timeout(5000), headers: { accept: 'application/json' } });
          if (!res.ok) throw new Error(`${PATH} answered ${res.status}`);
          const meta = await res.json();
          if (typeof meta.issuer !== 'string' || typeof meta.token_audience !== 'string') {
            throw new Error(`${PATH} names no issuer or token_audience`);
          }
          known = { issuer: issuer ?? meta.issuer, audience: audience ?? meta.token_audience };
          return known;
        } catch (e) {
          failedAt = performance.now();
          console.warn(`signoff-verify: cannot read ${base}${PATH} yet (${e.message}); refusing tokens until it can`);
          return null;
        } finally {
          pending = null;
        }
      })();
      return pending;
    },
  };
}

/**
 * For a jose claim error about `iss` or `aud`: `{ claim, found, expected }` (a configuration
 * fault, most often), else null.
 */
export function mismatch(e, expected) {
  if (e?.code !== 'ERR_JWT_CLAIM_VALIDATION_FAILED' || (e.claim !== 'iss' && e.claim !== 'aud')) return null;
  const payload = e.payload ?? {};
  const raw = payload[e.claim];
  const found = Array.isArray(raw) ? raw.join(' ') : String(raw);
  const want = e.claim === 'iss' ? expected.issuer : expected.audience;
  return { claim: e.claim, found, expected: want };
}

/** `iss is "a", this verifier expects "b"` */
export function describe({ claim, found, expected }, who) {
  return `${claim} is ${JSON.stringify(found)}, this ${who} expects ${JSON.stringify(expected)}`;
}
