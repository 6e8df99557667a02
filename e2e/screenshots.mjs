// Saves a screenshot of every demo page to e2e/artifacts/pages/, for a person to look at.
// Usage: node screenshots.mjs   (needs target/debug/signoff built)
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startServer, launch, register, signIn, artifacts } from './lib/harness.mjs';

const out = join(artifacts, 'pages');
mkdirSync(out, { recursive: true });
const server = await startServer();
const browser = await launch();
try {
  await register(server, 'ada@example.com');
  const phone = await browser.newContext({ userAgent: 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1' });
  await signIn(await phone.newPage(), server, 'ada@example.com');
  const ctx = await browser.newContext({ viewport: { width: 1000, height: 760 } });
  const page = await ctx.newPage();
  const shoot = async (name) => page.screenshot({ path: join(out, `${name}.png`), fullPage: true });
  await page.goto(`${server.base}/register`);
  await shoot('register');
  await page.goto(`${server.base}/login`);
  await shoot('login');
  await signIn(page, server, 'ada@example.com');
  await shoot('app');
  await page.goto(`${server.base}/app/sessions`);
  await shoot('sessions');
  await page.goto(`${server.base}/app/security`);
  await shoot('security');
  await page.goto(`${server.base}/auth/logout`);
  await shoot('logout-get');
  await page.goto(`${server.base}/app`);
  await Promise.all([page.waitForURL(/logged_out/), page.click('button:text-is("Sign out")')]);
  await shoot('signed-out');
  await page.goto(`${server.base}/login?revoked=1`);
  await shoot('revoked');
  console.log(`screenshots in ${out}`);
} finally {
  await browser.close();
  await server.stop();
}
