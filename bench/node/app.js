// The express-session baselines: `node app.js PORT [REDIS_URL]`. `/login` starts a session;
// `/api/me` loads it and answers the user stored in it (401 without one), like the other
// baselines. Without REDIS_URL the sessions live in express-session's MemoryStore, with it in
// Redis through connect-redis.
import express from 'express';
import session from 'express-session';

const [port, redisUrl] = process.argv.slice(2);
let store;
if (redisUrl) {
  const { createClient } = await import('redis');
  const { RedisStore } = await import('connect-redis');
  const client = createClient({ url: redisUrl });
  await client.connect();
  store = new RedisStore({ client, prefix: 'bench:' });
}
const app = express();
app.use(
  session({
    secret: 'benchmark secret, not a real one',
    resave: false,
    saveUninitialized: false,
    store,
    cookie: { httpOnly: true, sameSite: 'lax' },
  }),
);
app.get('/login', (req, res) => {
  req.session.user = 'bench@example.com';
  res.status(204).end();
});
app.get('/api/me', (req, res) => {
  if (!req.session.user) return res.status(401).end();
  res.json({ user: { email: req.session.user } });
});
app.listen(Number(port), '127.0.0.1');
