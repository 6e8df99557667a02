import type { JWTPayload } from 'jose';

export interface VerifierOptions {
  /** signoff's URL: its public URL or an internal address of it (keys and the feed come from here). */
  url: string;
  /** Expected `iss` (default: learned from signoff's /.well-known/signoff-configuration). */
  issuer?: string;
  /** Expected `aud` (default: learned from signoff: its token_audience). */
  audience?: string;
  clientId: string;
  clientSecret: string;
  /** Past this much silence of the revocation feed, every token is refused as stale (default 3000). */
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
  /** For a token whose iss or aud is not the one expected: which claim, what it says, what was expected. */
  claim?: 'iss' | 'aud';
  found?: string;
  expected?: string;
}

export interface Verifier {
  verify(token: string): Promise<SignoffClaims>;
  express(): (req: any, res: any, next: () => void) => Promise<void>;
  held(): number;
  close(): Promise<void>;
}

export function createVerifier(options: VerifierOptions): Promise<Verifier>;
export function parseFrames(buf: string): [Array<{ id?: string; data?: string; comment?: string }>, string];

/** Why a notification was refused: "invalid" (answered 400) or "unavailable" (answered 503). */
export class ReceiveError extends Error {
  code: 'invalid' | 'unavailable';
}

export interface WebhookEvent {
  type: 'session.ended' | 'user.token_version' | 'token.revoked';
  timestamp: string;
  data: Record<string, unknown>;
}

/** Checks a Standard Webhooks signature (any of `secrets`) over the raw body; the payload. */
export function verifyWebhook(
  secrets: string | string[],
  headers: Record<string, string | string[] | undefined> | Headers,
  body: string | Uint8Array,
  options?: { toleranceSec?: number; now?: number },
): WebhookEvent;

export interface LogoutTokenOptions {
  /** signoff's URL, public or internal (the JWKS is read from it). */
  url: string;
  /** Expected `iss` (default: learned from signoff's /.well-known/signoff-configuration). */
  issuer?: string;
  /** Your client id: the logout token's `aud`. */
  clientId: string;
  leewaySec?: number;
  jwksCooldownMs?: number;
}

export interface LogoutTokenClaims extends JWTPayload {
  /** Present for services that sign nobody in; an app that signs users in gets `sid` only. */
  sub?: string;
  sid: string;
  jti: string;
  events: Record<string, object>;
}

export function createLogoutTokenVerifier(options: LogoutTokenOptions): (token: string) => Promise<LogoutTokenClaims>;

type Handler = (req: any, res: any) => Promise<void>;

export function logoutReceiver(
  options: LogoutTokenOptions & {
    onLogout: (logout: { sub?: string; sid: string; jti: string; claims: LogoutTokenClaims }) => unknown;
  },
): Handler;

export function webhookReceiver(options: {
  secret?: string;
  /** Several during a rotation. */
  secrets?: string[];
  onEvent: (event: WebhookEvent, meta: { id: string }) => unknown;
  toleranceSec?: number;
}): Handler;
