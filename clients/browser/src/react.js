// signoff-browser/react: the signed-in state for React, and a sign-out that takes the user's
// data with it. When the session ends (logout() here, a logout in another tab, or on another
// device as the live event stream reports) the provider empties the TanStack Query client it
// was given, drops the SWR cache it owns for a new one, mounts its children afresh (so no
// component keeps the user's data in its state), reports "signed-out", and signoff.js runs its
// own cleanup (storage keys, Cache Storage, the in-memory access token). The page stays where
// it is: signoff.js is configured with `leave: false`.
import { Fragment, createContext, createElement, useCallback, useContext, useEffect, useMemo, useRef, useState } from 'react';
import signoff from './index.js';

const SignoffContext = createContext(null);

// A page can hold signoff.js twice (a <script src="/signoff.js"> and this package): the first
// copy serves both, and it must be one that has what this binding uses.
if (signoff && typeof signoff.offLogout !== 'function') {
  throw new Error('signoff-browser/react: the signoff.js already on this page is older than signoff-browser; load one copy');
}

const LOADING = Object.freeze({ status: 'loading', session: null, user: null });
const SIGNED_OUT = Object.freeze({ status: 'signed-out', session: null, user: null });

// A session that cannot be read (offline, busy) is asked again after 1 s, doubling up to this.
const MAX_RETRY_MS = 30_000;

/** The session as signoff tells it: cookie mode reads /auth/session, token mode the user behind
 * the stored refresh token. Null when signed out; throws when the server cannot tell. */
async function read(tokens) {
  if (tokens) {
    const me = await signoff.tokens.user();
    if (!me) return null;
    const claims = signoff.tokens.claims();
    const session = claims && typeof claims.sid === 'string'
      ? { id: claims.sid, expires_at: typeof claims.exp === 'number' ? new Date(claims.exp * 1000).toISOString() : undefined }
      : null;
    return { user: me.user, session };
  }
  const body = await signoff.session();
  return body && { user: body.user, session: body.session };
}

/** Empties a TanStack Query client. A mutation in flight at the end still runs its onSuccess
 * and onSettled, which often write the user's data back: the client is emptied again as each
 * settles (for at most a minute). */
function emptyQueryClient(queryClient) {
  const cache = queryClient.getMutationCache();
  const pending = new Set(cache.getAll().filter((m) => m.state.status === 'pending'));
  queryClient.cancelQueries().catch(() => {});
  queryClient.clear();
  if (pending.size === 0) return;
  let unsubscribe = () => {};
  const stop = setTimeout(() => unsubscribe(), 60_000);
  unsubscribe = cache.subscribe((event) => {
    if (!pending.has(event.mutation) || event.mutation.state.status === 'pending') return;
    pending.delete(event.mutation);
    queryClient.clear();
    if (pending.size === 0) {
      clearTimeout(stop);
      unsubscribe();
    }
  });
}

/** SWR's `provider` option: the cache the ref holds now. Made here, not in a render, so that
 * the closure holds the ref alone (SWR keeps its config, this function with it, in timers that
 * outlive a sign-out, and a closure made in a render would keep that render's user with it). */
function cacheOf(ref) {
  return () => ref.current;
}

/**
 * Provides `useSignoff()` to its children. `queryClient`: the TanStack Query client to empty at
 * sign-out. `swr`: SWR's `SWRConfig` component; the children then get a cache this provider
 * owns and replaces at sign-out. `tokens`: token mode (the SPA signs in with
 * `signoff.tokens.login` and calls its APIs with `signoff.tokens.fetch`). `options`: more
 * `signoff.configure` settings (storageKeys, cachePrefixes, …).
 */
export function SignoffProvider({ queryClient, swr, tokens = false, options, children }) {
  const [state, setState] = useState(LOADING);
  const status = useRef(state.status);
  status.current = state.status;
  const mounted = useRef(false);
  // Counts session ends: the children's key (mounted afresh at each), and what a read started
  // before an end must not overwrite.
  const [ends, setEnds] = useState(0);
  const endsRef = useRef(0);
  const swrCache = useRef(null);
  if (swrCache.current === null) swrCache.current = new Map();
  const swrValue = useRef(null);
  if (swrValue.current === null) swrValue.current = { provider: cacheOf(swrCache) };
  const retry = useRef({ timer: null, delay: 0 });
  // React keeps the previous render of a component beside the current one: a second render
  // after an end puts the signed-out state in both, so the old one, and the user in it, can go.
  const [settled, setSettled] = useState(0);
  useEffect(() => {
    if (settled !== ends) setSettled(ends);
  }, [settled, ends]);

  const reload = useCallback(async () => {
    if (!signoff) return;
    const epoch = endsRef.current;
    clearTimeout(retry.current.timer);
    let now;
    try {
      now = await read(tokens);
    } catch {
      if (!mounted.current) return;
      const r = retry.current;
      r.delay = Math.min(r.delay ? r.delay * 2 : 1000, MAX_RETRY_MS);
      r.timer = setTimeout(reload, r.delay);
      return;
    }
    retry.current.delay = 0;
    if (epoch !== endsRef.current || !mounted.current) return;
    if (!now) {
      // Found gone before anything said so: the same cleanup as any end (which signs out here).
      if (status.current === 'signed-in') signoff.cleanup('expired');
      else setState(SIGNED_OUT);
      return;
    }
    setState({ status: 'signed-in', session: now.session, user: now.user });
    signoff.watch();
  }, [tokens]);

  useEffect(() => {
    if (!signoff) return undefined;
    mounted.current = true;
    signoff.configure({ ...options, leave: false });
    const ended = () => {
      endsRef.current += 1;
      // In the hook itself, before anything renders again: no component sees the old data.
      if (queryClient) emptyQueryClient(queryClient);
      const old = swrCache.current;
      swrCache.current = new Map();
      old.clear();
      setEnds(endsRef.current);
      setState(SIGNED_OUT);
    };
    signoff.onLogout(ended);
    reload();
    return () => {
      mounted.current = false;
      signoff.offLogout(ended);
      clearTimeout(retry.current.timer);
    };
    // The provider's settings are read once, when it mounts.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);

  const logout = useCallback((opts) => signoff.logout(opts), []);
  const value = useMemo(() => ({ ...state, logout, reload }), [state, logout, reload]);

  const fresh = swr
    ? createElement(swr, { key: ends, value: swrValue.current }, children)
    : createElement(Fragment, { key: ends }, children);
  return createElement(SignoffContext.Provider, { value }, fresh);
}

/** `{ status, session, user, logout, reload }` of the nearest `<SignoffProvider>`. */
export function useSignoff() {
  const value = useContext(SignoffContext);
  if (value === null) throw new Error('useSignoff() is used outside <SignoffProvider>');
  return value;
}
