// Scenario 3b: the Node verifier library (clients/node) against a running signoff.
//
//   node bench/node/verifier.mjs BASE ADMIN_TOKEN SECONDS ROUNDS
//
// Prints one line of JSON: verifications per second for one token reused and for a pool of
// 1,000 distinct tokens (each `verify` checks the signature, the claims and the revocation
// state in memory), and the revocation propagation: after `POST /auth/revoke` answers, how long
// until `verify` refuses the token (p50, p99, max over ROUNDS revocations).
import { createVerifier, VerifyError } from '../../clients/node/src/index.js';

const [base, admin, seconds, rounds] = [process.argv[2], process.argv[3], Number(process.argv[4]), Number(process.argv[5])];
const PASSWORD = 'correct horse battery staple';

async function post(path, body, bearer) {
  const headers = { 'content-type': 'application/json', accept: 'application/json' };
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  const res = await fetch(base + path, { method: 'POST', headers, body: JSON.stringify(body) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${path} answered ${res.status}: ${text}`);
  return text ? JSON.parse(text) : null;
}

async function code(v, token) {
  try {
    await v.verify(token);
    return 'ok';
  } catch (e) {
    if (!(e instanceof VerifyError)) throw e;
    return e.code;
  }
}

const email = `verifier${Date.now()}@example.com`;
await post('/auth/register', { email, password: PASSWORD });
const client = await post('/admin/clients', { name: 'bench verifier' }, admin);
const v = await createVerifier({ url: base, clientId: client.client_id, clientSecret: client.client_secret });
let { access_token: token, refresh_token: rt } = await post('/auth/token', { grant_type: 'password', email, password: PASSWORD });

// Throughput: sequential verifications (the library's own cost; no network per call).
async function rate(tokens) {
  for (const t of tokens) if ((await code(v, t)) !== 'ok') throw new Error('a valid token was refused');
  let n = 0;
  const end = performance.now() + seconds * 1000;
  while (performance.now() < end) {
    for (let i = 0; i < 100; i++) await v.verify(tokens[(n + i) % tokens.length]);
    n += 100;
  }
  return Math.round(n / seconds);
}
const reused = await rate([token]);
const pool = [];
for (let i = 0; i < 1000; i++) {
  const pair = await post('/auth/token', { grant_type: 'refresh_token', refresh_token: rt });
  rt = pair.refresh_token;
  pool.push(pair.access_token);
}
const distinct = await rate(pool);

// Propagation: revoke, then ask until refused.
const lags = [];
for (let round = 0; round < rounds; round++) {
  const pair = await post('/auth/token', { grant_type: 'refresh_token', refresh_token: rt });
  rt = pair.refresh_token;
  if ((await code(v, pair.access_token)) !== 'ok') throw new Error(`round ${round}: a fresh token was refused`);
  await post('/auth/revoke', { token: pair.access_token });
  const answered = performance.now();
  for (;;) {
    if ((await code(v, pair.access_token)) === 'revoked') break;
    if (performance.now() - answered > 2000) throw new Error(`round ${round}: accepted 2 s after the revoke`);
    await new Promise((r) => setImmediate(r));
  }
  lags.push(performance.now() - answered);
}
lags.sort((a, b) => a - b);
const pct = (p) => lags[Math.round((lags.length - 1) * p)];
await v.close();
console.log(JSON.stringify({ reused, distinct, p50: pct(0.5), p99: pct(0.99), max: lags[lags.length - 1], rounds }));
