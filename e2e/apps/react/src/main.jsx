// The test page: one of the README's examples, chosen by ?app=query|swr|tokens, with the
// TanStack Query client where the test can count what it holds.
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import * as Query from './QueryApp.jsx';
import * as Swr from './SwrApp.jsx';
import * as Tokens from './TokenApp.jsx';

const chosen = { query: Query, swr: Swr, tokens: Tokens }[new URLSearchParams(location.search).get('app') ?? 'query'];
window.example = { queryClient: chosen.queryClient ?? null };
createRoot(document.getElementById('root')).render(
  <StrictMode>
    <chosen.App />
  </StrictMode>,
);
