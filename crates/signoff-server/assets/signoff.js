/*! signoff.js — the browser half of signoff. No dependencies, no build step.
 *
 *   signoff.configure({ storageKeys: ['app:*'], unregisterServiceWorkers: true });
 *   signoff.onLogout(() => queryClient.clear());      // your own caches
 *   signoff.logout({ scope: 'local', returnTo: '/' }); // 'local' | 'others' | 'global'
 *   signoff.watch();                                   // leave when the session ends anywhere
 *
 * logout() POSTs with the CSRF token, then forgets: the configured localStorage keys,
 * sessionStorage, your hooks' caches, Cache Storage, optionally service workers, and any
 * in-memory access token. It tells the other tabs (BroadcastChannel, with a storage-event
 * fallback) and leaves with location.replace, so the protected page is not in history.
 *
 * watch() listens to /auth/events and to the other tabs; when the session ends it runs the
 * same cleanup and shows the sign-in page with a notice. It also guards the Back button: a
 * page restored from the back/forward cache re-checks the session and leaves if it is gone.
 * Pages whose <html> carries data-signoff-watch start watching by themselves.
 *
 * Token mode (SPAs talking to APIs): signoff.tokens.login(email, password) keeps the access
 * token in memory only, refreshes it before it expires with one refresh in flight across all
 * tabs (Web Locks), and signoff.tokens.fetch(url, init) sends it. The refresh token is kept in
 * IndexedDB, whose transactions every tab sees at once (localStorage reaches other tabs a
 * moment late, which would make them present an already-rotated token).
 */
(function (global) {
  'use strict';

  var config = {
    loginUrl: '/login',
    sessionUrl: '/auth/session',
    logoutUrl: '/auth/logout',
    eventsUrl: '/auth/events',
    tokenUrl: '/auth/token',
    storageKeys: [],
    clearSessionStorage: true,
    cachePrefixes: null,
    unregisterServiceWorkers: false,
    channel: 'signoff',
    refreshTokenKey: 'refresh',
    database: 'signoff',
    refreshEarlySeconds: 60
  };
  var hooks = [];
  var leaving = false;
  var source = null;
  var access = null;
  var refreshTimer = null;
  var channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel(config.channel) : null;
  var SIGNAL_KEY = 'signoff:signed-out';

  function configure(options) {
    for (var k in options) if (Object.prototype.hasOwnProperty.call(options, k)) config[k] = options[k];
    return api;
  }

  function onLogout(fn) { hooks.push(fn); return api; }

  function matches(key, patterns) {
    for (var i = 0; i < patterns.length; i++) {
      var p = patterns[i];
      if (p === '*' || p === key) return true;
      if (p.charAt(p.length - 1) === '*' && key.indexOf(p.slice(0, -1)) === 0) return true;
    }
    return false;
  }

  function clearLocalStorage() {
    try {
      var doomed = [];
      for (var i = 0; i < localStorage.length; i++) {
        var key = localStorage.key(i);
        if (key !== null && matches(key, config.storageKeys)) doomed.push(key);
      }
      doomed.forEach(function (k) { localStorage.removeItem(k); });
    } catch (_) { /* storage may be disabled */ }
  }

  /** Forgets everything this browser holds for the signed-out user. */
  function cleanup() {
    access = null;
    if (refreshTimer) clearTimeout(refreshTimer);
    clearLocalStorage();
    var work0 = forgetRefreshToken();
    if (config.clearSessionStorage) { try { sessionStorage.clear(); } catch (_) { /* disabled */ } }
    var work = hooks.map(function (fn) { try { return Promise.resolve(fn()); } catch (e) { return Promise.reject(e); } });
    work.push(work0);
    if (global.caches && caches.keys) {
      work.push(caches.keys().then(function (names) {
        return Promise.all(names.filter(function (n) {
          return !config.cachePrefixes || config.cachePrefixes.some(function (p) { return n.indexOf(p) === 0; });
        }).map(function (n) { return caches.delete(n); }));
      }));
    }
    if (config.unregisterServiceWorkers && navigator.serviceWorker && navigator.serviceWorker.getRegistrations) {
      work.push(navigator.serviceWorker.getRegistrations().then(function (regs) {
        return Promise.all(regs.map(function (r) { return r.unregister(); }));
      }));
    }
    return Promise.all(work.map(function (p) { return p.catch(function () { return null; }); }));
  }

  function announce(reason) {
    var message = { type: 'signed-out', reason: reason, at: Date.now() };
    if (channel) channel.postMessage(message);
    try {
      localStorage.setItem(SIGNAL_KEY, JSON.stringify(message));
      localStorage.removeItem(SIGNAL_KEY);
    } catch (_) { /* no fallback without storage */ }
  }

  function leave(url) {
    leaving = true;
    if (source) source.close();
    global.location.replace(url);
  }

  /** Someone else ended this session: clean up and show the sign-in page with a notice. */
  function signedOut(reason) {
    if (leaving) return;
    leaving = true;
    cleanup().then(function () {
      leave(config.loginUrl + '?revoked=1&reason=' + encodeURIComponent(reason || 'revoked'));
    });
  }

  function csrfToken() {
    var meta = document.querySelector('meta[name="signoff-csrf"]');
    if (meta && meta.content) return Promise.resolve(meta.content);
    return fetch(config.sessionUrl, { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } })
      .then(function (r) { return r.ok ? r.json() : {}; })
      .then(function (body) { return body.csrf_token || ''; });
  }

  /** Logs out (scope 'local' by default), forgets, tells the other tabs and leaves. */
  function logout(options) {
    options = options || {};
    var scope = options.scope || 'local';
    var endsHere = scope !== 'others';
    // Our own logout ends this session: its event stream will say so, and must not win the
    // race to navigate (this page leaves for returnTo, not for the "signed out" notice).
    if (endsHere) {
      leaving = true;
      if (source) { source.close(); source = null; }
    }
    return csrfToken().then(function (token) {
      var headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
      if (token) headers['X-CSRF-Token'] = token;
      if (access) headers.Authorization = 'Bearer ' + access.token;
      return storedRefreshToken().then(function (refresh) {
        var body = { scope: scope };
        if (refresh) body.refresh_token = refresh;
        return fetch(config.logoutUrl, { method: 'POST', credentials: 'same-origin', headers: headers, body: JSON.stringify(body) });
      });
    }).then(function (res) {
      if (res.status === 403) throw new Error('signoff: logout refused (cross-site check)');
      if (!endsHere) return res.json();
      return cleanup().then(function () {
        announce('logout');
        leave(options.returnTo || config.loginUrl + '?logged_out=1');
      });
    }).catch(function (e) {
      // Still signed in: keep watching, and let the caller decide.
      if (endsHere) { leaving = false; watch(); }
      throw e;
    });
  }

  function checkSession() {
    return fetch(config.sessionUrl, { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } })
      .then(function (r) { if (r.status === 401) signedOut('expired'); })
      .catch(function () { /* offline: nothing to decide */ });
  }

  /** Leaves the page the moment its session ends, here or in another tab. */
  function watch() {
    if (!source && global.EventSource) {
      source = new EventSource(config.eventsUrl);
      source.addEventListener('revoked', function (e) {
        var reason = 'revoked';
        try { reason = JSON.parse(e.data).reason || reason; } catch (_) { /* keep default */ }
        source.close();
        announce(reason);
        signedOut(reason);
      });
      source.onerror = function () {
        // A stream refused (401) means the session is already gone; anything else reconnects.
        if (source.readyState === EventSource.CLOSED) checkSession();
      };
    }
    return api;
  }

  function onSignal(message) {
    if (message && message.type === 'signed-out') signedOut(message.reason);
  }
  if (channel) channel.onmessage = function (e) { onSignal(e.data); };
  global.addEventListener('storage', function (e) {
    if (e.key === SIGNAL_KEY && e.newValue) { try { onSignal(JSON.parse(e.newValue)); } catch (_) { /* ignore */ } }
  });
  // Back/forward cache: a restored page may belong to a session that has ended since.
  global.addEventListener('pageshow', function (e) {
    if (e.persisted && document.documentElement.hasAttribute('data-signoff-watch')) checkSession();
  });

  // ---- token mode ------------------------------------------------------------------------

  // A tiny key-value store in IndexedDB: strongly consistent across tabs.
  function store(mode, fn) {
    return new Promise(function (resolve, reject) {
      if (!global.indexedDB) { reject(new Error('no IndexedDB')); return; }
      var open = indexedDB.open(config.database, 1);
      open.onupgradeneeded = function () { open.result.createObjectStore('kv'); };
      open.onerror = function () { reject(open.error); };
      open.onsuccess = function () {
        var db = open.result;
        var tx = db.transaction('kv', mode);
        var req = fn(tx.objectStore('kv'));
        tx.oncomplete = function () { db.close(); resolve(req && req.result); };
        tx.onerror = tx.onabort = function () { db.close(); reject(tx.error); };
      };
    });
  }

  function storedRefreshToken() {
    return store('readonly', function (kv) { return kv.get(config.refreshTokenKey); }).catch(function () { return null; });
  }

  function keepRefreshToken(token) {
    return store('readwrite', function (kv) { return kv.put(token, config.refreshTokenKey); });
  }

  function forgetRefreshToken() {
    return store('readwrite', function (kv) { return kv.delete(config.refreshTokenKey); }).catch(function () { return null; });
  }

  /** Takes a grant's answer: the access token into memory, the refresh token into IndexedDB
   * (resolved once the write is committed, so the next lock holder reads it). */
  function accept(body) {
    access = { token: body.access_token, expiresAt: Date.now() + body.expires_in * 1000 };
    if (refreshTimer) clearTimeout(refreshTimer);
    var wait = Math.max(1, body.expires_in - config.refreshEarlySeconds) * 1000;
    refreshTimer = setTimeout(function () { refresh().catch(function () { /* reported via signedOut */ }); }, wait);
    return keepRefreshToken(body.refresh_token).then(function () { return access.token; });
  }

  function grant(params) {
    return fetch(config.tokenUrl, {
      method: 'POST', credentials: 'omit', headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify(params)
    }).then(function (r) {
      if (!r.ok) throw new Error('signoff: token grant refused (' + r.status + ')');
      return r.json();
    });
  }

  /** One refresh in flight across every tab: the Web Lock serialises them, and each reads the
   * refresh token only once it holds the lock, so no tab presents a rotated token. */
  function refresh() {
    var run = function () {
      return storedRefreshToken().then(function (token) {
        if (!token) throw new Error('signoff: no refresh token');
        return grant({ grant_type: 'refresh_token', refresh_token: token }).then(accept, function (e) {
          signedOut('refresh_failed');
          throw e;
        });
      });
    };
    if (navigator.locks && navigator.locks.request) return navigator.locks.request('signoff-refresh', run);
    return run();
  }

  var tokens = {
    login: function (email, password) { return grant({ grant_type: 'password', email: email, password: password }).then(accept); },
    get: function () {
      if (access && access.expiresAt - Date.now() > config.refreshEarlySeconds * 1000) return Promise.resolve(access.token);
      return refresh();
    },
    fetch: function (url, init) {
      return tokens.get().then(function (token) {
        init = init || {};
        var headers = new Headers(init.headers || {});
        headers.set('Authorization', 'Bearer ' + token);
        init.headers = headers;
        return fetch(url, init);
      });
    },
    refresh: refresh,
    /** Whether this browser holds a refresh token. */
    stored: function () { return storedRefreshToken().then(function (t) { return !!t; }); }
  };

  var api = { configure: configure, onLogout: onLogout, logout: logout, watch: watch, cleanup: cleanup, checkSession: checkSession, tokens: tokens, config: config };
  global.signoff = api;
  if (document.documentElement.hasAttribute('data-signoff-watch')) watch();
})(window);
