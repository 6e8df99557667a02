// Apache 2.4 with Debian's mod_auth_openidc in front of a static intranet page: the relying
// party most intranets run. Sessions are in its server-side cache (the default, shared memory),
// so a back-channel logout at `redirect_uri?logout=backchannel` ends them; RP-initiated logout
// is `redirect_uri?logout=<where to land>`. The config and the files are in a temporary folder;
// `stop` kills only the Apache it started.

import { spawn, execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

const MODULES = '/usr/lib/apache2/modules';
const BINARY = process.env.APACHE2 || '/usr/sbin/apache2';

export function apacheMissing() {
  if (!existsSync(BINARY)) return `${BINARY} is missing (Debian package apache2)`;
  if (!existsSync(join(MODULES, 'mod_auth_openidc.so'))) {
    return `${MODULES}/mod_auth_openidc.so is missing (Debian package libapache2-mod-auth-openidc)`;
  }
  return null;
}

export async function startApacheRp({ issuer, clientId, clientSecret, host = '127.0.0.1', port }) {
  const missing = apacheMissing();
  if (missing) throw new Error(missing);
  const base = `http://${host}:${port}`;
  const dir = mkdtempSync(join(tmpdir(), 'signoff-apache-'));
  // Apache started as root serves as www-data, which must read the pages.
  chmodSync(dir, 0o755);
  mkdirSync(join(dir, 'htdocs', 'private'), { recursive: true });
  writeFileSync(join(dir, 'htdocs', 'private', 'index.html'), '<main><p id="who">The Apache intranet</p></main>\n');
  writeFileSync(join(dir, 'htdocs', 'bye.html'), '<main><p id="bye">Signed out of the Apache intranet.</p></main>\n');
  const root = process.getuid?.() === 0;
  const conf = `
ServerRoot ${dir}
ServerName ${host}
Listen ${host}:${port}
PidFile ${dir}/httpd.pid
ErrorLog ${dir}/error.log
LogLevel warn auth_openidc:info
LoadModule mpm_event_module ${MODULES}/mod_mpm_event.so
LoadModule authn_core_module ${MODULES}/mod_authn_core.so
LoadModule authz_core_module ${MODULES}/mod_authz_core.so
LoadModule authz_user_module ${MODULES}/mod_authz_user.so
LoadModule auth_openidc_module ${MODULES}/mod_auth_openidc.so
LoadModule mime_module ${MODULES}/mod_mime.so
LoadModule dir_module ${MODULES}/mod_dir.so
TypesConfig /etc/mime.types
DirectoryIndex index.html
${root ? 'User www-data\nGroup www-data' : ''}
DocumentRoot ${dir}/htdocs
<Directory ${dir}/htdocs>
  Require all granted
</Directory>

OIDCProviderMetadataURL ${issuer}/.well-known/openid-configuration
OIDCClientID ${clientId}
OIDCClientSecret ${clientSecret}
OIDCRedirectURI ${base}/private/redirect_uri
OIDCCryptoPassphrase ${randomBytes(24).toString('hex')}
OIDCPKCEMethod S256
OIDCScope "openid email"
OIDCRemoteUserClaim email
OIDCInfoHook iat id_token session
OIDCDefaultLoggedOutURL ${base}/bye.html
OIDCSessionInactivityTimeout 3600
<Location /private>
  AuthType openid-connect
  Require valid-user
</Location>
`;
  writeFileSync(join(dir, 'httpd.conf'), conf);
  execFileSync(BINARY, ['-t', '-f', join(dir, 'httpd.conf')], { stdio: 'pipe' });
  const child = spawn(BINARY, ['-f', join(dir, 'httpd.conf'), '-DFOREGROUND'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const res = await fetch(`${base}/bye.html`);
      if (res.ok) break;
    } catch { /* not up yet */ }
    if (child.exitCode !== null) throw new Error(`apache2 exited: ${stderr}${errorLog(dir)}`);
    if (Date.now() > deadline) throw new Error(`apache2 did not start: ${stderr}${errorLog(dir)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    base,
    /** mod_auth_openidc's own log (what it refused and why). */
    log: () => errorLog(dir),
    async stop() {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function errorLog(dir) {
  try {
    return readFileSync(join(dir, 'error.log'), 'utf8');
  } catch {
    return '';
  }
}
