// Type-checked by the e2e suite (tsc --noEmit --strict) against the installed package: the
// types are found and say what the README says.
import { QueryClient } from '@tanstack/react-query';
import { SWRConfig } from 'swr';
import signoff, { type LogoutResult, type Signoff } from 'signoff-browser';
import { SignoffProvider, useSignoff, type SignoffStatus } from 'signoff-browser/react';

const api: Signoff = signoff;
api.configure({ storageKeys: ['app:*'], leave: false }).onLogout(({ reason }) => console.log(reason.toUpperCase()));

export function Status(): string {
  const { status, user, session, logout } = useSignoff();
  const s: SignoffStatus = status;
  const done: Promise<LogoutResult> = logout({ scope: 'global' });
  void done;
  return `${s} ${user?.email ?? ''} ${session?.id ?? ''}`;
}

export const both = (
  <SignoffProvider queryClient={new QueryClient()} swr={SWRConfig} options={{ storageKeys: ['app:*'] }}>
    <p>app</p>
  </SignoffProvider>
);

// @ts-expect-error: a scope signoff does not have (fails to compile if the types were not found)
api.logout({ scope: 'everything' });
