import { useState } from 'react';
import useSWR, { SWRConfig } from 'swr';
import { SignoffProvider, useSignoff } from 'signoff-browser/react';

export function App() {
  return (
    <SignoffProvider swr={SWRConfig}>
      <Home />
    </SignoffProvider>
  );
}

function Home() {
  const { status, user, logout } = useSignoff();
  const [error, setError] = useState(null);
  if (status === 'loading') return <p>Loading…</p>;
  if (status === 'signed-out') return <p>Signed out. <a href="/login?return_to=/">Sign in</a></p>;
  const signOut = (scope) => logout({ scope }).catch((e) => setError(e.stillSignedIn ? 'You are still signed in: try again.' : String(e)));
  return (
    <main>
      <p>Signed in as {user.email}</p>
      <Profile />
      <button onClick={() => signOut('local')}>Sign out</button>
      <button onClick={() => signOut('global')}>Sign out everywhere</button>
      {error && <p role="alert">{error}</p>}
    </main>
  );
}

// Your data: cached by SWR in a cache the provider owns and replaces when the session ends.
const json = (url) => fetch(url).then((r) => (r.ok ? r.json() : Promise.reject(new Error(`${r.status}`))));

function Profile() {
  const { data } = useSWR('/api/me', json);
  return <p>{data ? `Your data: ${data.user.email}` : 'Loading your data…'}</p>;
}
