import { useState } from 'react';
import { QueryClient, QueryClientProvider, useQuery } from '@tanstack/react-query';
import signoff from 'signoff-browser';
import { SignoffProvider, useSignoff } from 'signoff-browser/react';

export const queryClient = new QueryClient();

// Token mode: the access token in memory only, sent by signoff.tokens.fetch.
export function App() {
  return (
    <QueryClientProvider client={queryClient}>
      <SignoffProvider queryClient={queryClient} tokens>
        <Home />
      </SignoffProvider>
    </QueryClientProvider>
  );
}

function Home() {
  const { status, user, logout, reload } = useSignoff();
  if (status === 'loading') return <p>Loading…</p>;
  if (status === 'signed-out') return <SignIn onSignedIn={reload} />;
  return (
    <main>
      <p>Signed in as {user.email}</p>
      <Profile />
      <button onClick={() => logout({ scope: 'local' })}>Sign out</button>
    </main>
  );
}

function SignIn({ onSignedIn }) {
  const [error, setError] = useState(null);
  const submit = (e) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    signoff.tokens.login(form.get('email'), form.get('password')).then(onSignedIn, () => setError('Wrong e-mail or password.'));
  };
  return (
    <form onSubmit={submit}>
      <input name="email" type="email" autoComplete="username" required />
      <input name="password" type="password" autoComplete="current-password" required />
      <button>Sign in</button>
      {error && <p role="alert">{error}</p>}
    </form>
  );
}

function Profile() {
  const { data, isPending } = useQuery({
    queryKey: ['me'],
    queryFn: () => signoff.tokens.fetch('/api/me').then((r) => (r.ok ? r.json() : Promise.reject(new Error(`${r.status}`)))),
  });
  return <p>{isPending ? 'Loading your data…' : `Your data: ${data.user.email}`}</p>;
}
