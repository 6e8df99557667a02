// Single sign-on and single logout with real relying parties (e2e/lib/relying-parties.mjs), on
// two signoff nodes over one PostgreSQL database behind a proxy that alternates requests: a
// browser's authorization request, the app's token request and the logout land on different
// nodes, and either node's outbox sends the back-channel logouts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startNodes } from '../lib/harness.mjs';
import { relyingPartyScenarios, ISSUER_ENV } from '../lib/relying-parties.mjs';

let cluster;
relyingPartyScenarios('two nodes on PostgreSQL', async () => {
  cluster = await startNodes(2, ISSUER_ENV);
  return cluster;
});

test('two nodes on PostgreSQL: both nodes served the scenarios above', () => {
  // The proxy alternates: the scenarios did not run on one node alone.
  const served = cluster?.served() ?? [];
  assert.ok(served.length === 2 && served.every((n) => n > 50), `requests per node: ${served}`);
});
