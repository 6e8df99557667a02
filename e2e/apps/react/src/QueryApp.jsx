import { useState } from 'react';
import { QueryClient, QueryClientProvider, useQuery } from '@tanstack/react-query';
import { SignoffProvider, useSignoff } from 'signoff-browser/react';

export const queryClient = new QueryClient();

export function App() {
  return (
    <QueryClientProvider client={queryClient}>
      <SignoffProvider queryClient={queryClient}>
        <Home />
      </SignoffProvider>
    </QueryClientProvider>
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

// Your data: cached by TanStack Query, emptied when the session ends anywhere.
function Profile() {
  const { data, isPending } = useQuery({
    queryKey: ['me'],
    queryFn: () => fetch('/api/me').then((r) => (r.ok ? r.json() : Promise.reject(new Error(`${r.status}`)))),
  });
  return <p>{isPending ? 'Loading your data…' : `Your data: ${data.user.email}`}</p>;
}
