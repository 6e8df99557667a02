import type { JWTPayload } from 'jose';

export interface VerifierOptions {
  /** signoff's base URL. */
  url: string;
  /** Expected `iss` (default: `url`). */
  issuer?: string;
  /** Expected `aud` (default: `url`). */
  audience?: string;
  clientId: string;
  clientSecret: string;
  /** Past this much silence of the revocation feed, every token is refused as stale (default 10000). */
  staleAfterMs?: number;
  /** The JWKS is refetched for an unknown kid at most this often (default 30000). */
  jwksCooldownMs?: number;
  /** Clock skew tolerated on exp, nbf and iat, in seconds (default 10). */
  leewaySec?: number;
  /** How long ended sessions and token versions are kept; longer than the access-token lifetime (default 3600000). */
  retainMs?: number;
}

export interface SignoffClaims extends JWTPayload {
  sub: string;
  jti: string;
  sid: string;
  tv: number;
}

export class VerifyError extends Error {
  code: 'invalid_token' | 'revoked' | 'stale';
}

export interface Verifier {
  verify(token: string): Promise<SignoffClaims>;
  express(): (req: any, res: any, next: () => void) => Promise<void>;
  held(): number;
  close(): Promise<void>;
}

export function createVerifier(options: VerifierOptions): Promise<Verifier>;
export function parseFrames(buf: string): [Array<{ id?: string; data?: string; comment?: string }>, string];
