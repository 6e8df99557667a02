// Types of signoff-browser: the `signoff` object that signoff.js defines.

export type LogoutScope = 'local' | 'others' | 'global';

/** Why this browser's session ended, as given to onLogout hooks. */
export interface LogoutEvent {
  /** "logout" (this browser), "expired", or the server's reason ("logout_everywhere", "revoked", …). */
  reason: string;
}

export interface Config {
  loginUrl: string;
  sessionUrl: string;
  logoutUrl: string;
  eventsUrl: string;
  tokenUrl: string;
  /** GET with the access token in token mode, answering `{user}`. */
  userUrl: string;
  /** localStorage keys to forget at sign-out; a trailing `*` matches a prefix. */
  storageKeys: string[];
  clearSessionStorage: boolean;
  /** Cache Storage names (prefixes) to delete; null deletes every cache. */
  cachePrefixes: string[] | null;
  unregisterServiceWorkers: boolean;
  channel: string;
  refreshTokenKey: string;
  database: string;
  refreshEarlySeconds: number;
  logoutRetries: number;
  logoutRetryMaxSeconds: number;
  logoutTimeoutMs: number;
  watchMaxBackoffSeconds: number;
  /** Whether a page whose session ended leaves for the sign-in page (or logout's returnTo);
   * false keeps a single-page app where it is, signed out. */
  leave: boolean;
}

export interface LogoutOptions {
  scope?: LogoutScope;
  /** Where to go once signed out (with `leave: false` the page stays unless this is given). */
  returnTo?: string;
}

/** The server's answer to the logout, and what the page did. */
export interface LogoutResult {
  /** Sessions ended (`others`, `global`). */
  revoked?: number;
  /** Whether this browser's session was cleared. */
  cleared?: boolean;
  no_session?: boolean;
  frontchannel_logout?: string;
  /** A busy server was asked again: an earlier try may have done the work. */
  retried: boolean;
  /** Whether the page is leaving. */
  left: boolean;
  [key: string]: unknown;
}

/** A logout that did not happen: the browser is still signed in. */
export interface LogoutError extends Error {
  stillSignedIn: true;
  /** The server's status, or 0 when it could not be reached. */
  status: number;
}

export interface User {
  id: string;
  email: string;
  [key: string]: unknown;
}

export interface Session {
  id: string;
  created_at?: string;
  last_active_at?: string;
  expires_at?: string;
  [key: string]: unknown;
}

export interface Tokens {
  /** Password grant: the access token in memory, the refresh token in IndexedDB. */
  login(email: string, password: string): Promise<string>;
  /** A fresh access token (refreshed when close to expiry). */
  get(): Promise<string>;
  /** fetch() with the access token. */
  fetch(url: RequestInfo | URL, init?: RequestInit): Promise<Response>;
  refresh(quiet?: boolean): Promise<string>;
  /** The signed-in user (GET userUrl), or null with no usable refresh token. */
  user(): Promise<{ user: User } | null>;
  /** The in-memory access token's claims, not verified (for display), or null. */
  claims(): Record<string, unknown> | null;
  /** Whether this browser holds a refresh token. */
  stored(): Promise<boolean>;
}

export interface Signoff {
  configure(options: Partial<Config>): Signoff;
  onLogout(fn: (event: LogoutEvent) => unknown): Signoff;
  offLogout(fn: (event: LogoutEvent) => unknown): Signoff;
  logout(options?: LogoutOptions): Promise<LogoutResult>;
  watch(): Signoff;
  cleanup(reason?: string): Promise<unknown>;
  /** `{user, session, csrf_token}`, or null with no session; rejects when the server cannot tell. */
  session(): Promise<{ user: User; session: Session; csrf_token: string } | null>;
  checkSession(): Promise<void>;
  tokens: Tokens;
  config: Config;
}

/** Undefined where there is no browser (server rendering). */
declare const signoff: Signoff;
export { signoff };
export default signoff;

declare global {
  interface Window {
    signoff: Signoff;
  }
}
