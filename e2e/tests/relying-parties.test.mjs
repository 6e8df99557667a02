// Single sign-on and single logout with real relying parties (e2e/lib/relying-parties.mjs), on
// one signoff over SQLite.
import { startServer } from '../lib/harness.mjs';
import { relyingPartyScenarios, ISSUER_ENV } from '../lib/relying-parties.mjs';

relyingPartyScenarios('one node', () => startServer(ISSUER_ENV));
