// Types of signoff-browser/react.
import type { ComponentType, ReactNode } from 'react';
import type { Config, LogoutOptions, LogoutResult, Session, User } from './index.js';

export type SignoffStatus = 'loading' | 'signed-in' | 'signed-out';

export interface SignoffState {
  status: SignoffStatus;
  /** The session (token mode: `{ id, expires_at }` of the access token), null unless signed in. */
  session: Session | null;
  user: User | null;
  /** signoff.logout(): resolves once the server confirmed; rejects with `stillSignedIn`. */
  logout(options?: LogoutOptions): Promise<LogoutResult>;
  /** Reads the session again (after `signoff.tokens.login` in token mode). */
  reload(): Promise<void>;
}

/** What the provider needs of a TanStack Query `QueryClient`. */
export interface ClearableQueryClient {
  cancelQueries(): Promise<unknown>;
  clear(): void;
  getMutationCache(): {
    getAll(): Array<{ state: { status: string } }>;
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    subscribe(listener: (event: any) => void): () => void;
  };
}

export interface SignoffProviderProps {
  /** Emptied (`clear()`) when the session ends. */
  queryClient?: ClearableQueryClient;
  /** SWR's `SWRConfig`: the children get a cache the provider owns and replaces when the session ends. */
  // (Typed loosely: the provider passes `{ provider }` to it, a cache SWR's own types describe.)
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  swr?: ComponentType<{ value?: any; children?: ReactNode }>;
  /** Token mode: the session is the stored refresh token's (see `signoff.tokens`). */
  tokens?: boolean;
  /** More signoff.configure() settings; `leave` is always false under the provider. */
  options?: Partial<Omit<Config, 'leave'>>;
  children?: ReactNode;
}

export function SignoffProvider(props: SignoffProviderProps): ReactNode;

export function useSignoff(): SignoffState;
