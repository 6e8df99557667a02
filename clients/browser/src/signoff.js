/*! signoff.js — the browser half of signoff. No dependencies, no build step.
 *
 * One source: signoff serves this file at /signoff.js, and the npm package signoff-browser
 * ships it as it is (its ES module and React binding wrap the `signoff` global it defines).
 *
 *   signoff.configure({ storageKeys: ['app:*'], unregisterServiceWorkers: true });
 *   signoff.onLogout(() => queryClient.clear());      // your own caches
 *   signoff.logout({ scope: 'local', returnTo: '/' }); // 'local' | 'others' | 'global'
 *   signoff.watch();                                   // leave when the session ends anywhere
 *
 * logout() POSTs with the CSRF token and, only once the server has confirmed it (2xx), or
 * said the session was already gone (401), forgets: the configured localStorage keys,
 * sessionStorage, your hooks' caches, Cache Storage, optionally service workers, and any
 * in-memory access token. It tells the other tabs (BroadcastChannel, with a storage-event
 * fallback) and leaves with location.replace, so the protected page is not in history.
 * A busy server (503 with Retry-After) is asked again a few times within a bound; any other
 * answer, or none, rejects the promise with an error whose `stillSignedIn` is true: nothing
 * was forgotten, no tab was told, and the page must say that the user is still signed in.
 *
 * watch() listens to /auth/events and to the other tabs; when the session ends it runs the
 * same cleanup and shows the sign-in page with a notice. (In token mode it reads the stream
 * with fetch, sending the access token.) It also guards the Back button: a
 * page restored from the back/forward cache re-checks the session and leaves if it is gone.
 * Pages whose <html> carries data-signoff-watch start watching by themselves.
 *
 * Single-page apps that show their own signed-out state set `leave: false`: a session that
 * ends (here, in another tab, or anywhere the stream reports) then runs the same cleanup and
 * the onLogout hooks, and the page stays; logout() leaves only for an explicit returnTo, or
 * by way of signoff's signed-out page when the sign-in's apps take front-channel logouts.
 *
 * Token mode (SPAs talking to APIs): signoff.tokens.login(email, password) keeps the access
 * token in memory only, refreshes it before it expires with one refresh in flight across all
 * tabs (Web Locks), and signoff.tokens.fetch(url, init) sends it. The refresh token is kept in
 * IndexedDB, whose transactions every tab sees at once (localStorage reaches other tabs a
 * moment late, which would make them present an already-rotated token).
 */
(function (global) {
  'use strict';
  // Imported where there is no browser (a bundle rendered on a server): nothing to do.
  if (!global || !global.document) return;
  // Loaded twice (a script tag and a bundle): the first copy serves both.
  if (global.signoff && global.signoff.tokens) return;

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
    refreshEarlySeconds: 60,
    // A busy server's logout is asked again this many times, each only when its Retry-After
    // is at most logoutRetryMaxSeconds.
    logoutRetries: 2,
    logoutRetryMaxSeconds: 5,
    // A logout request with no answer within this long is taken as not done.
    logoutTimeoutMs: 15000,
    // watch() reopens a refused or dropped stream after 1 s, doubling up to this.
    watchMaxBackoffSeconds: 60,
    // Whether a page whose session ended leaves (for the sign-in page, or logout's returnTo);
    // false keeps single-page apps where they are, signed out (see above).
    leave: true,
    // GET with the access token in token mode: the signed-in user, as `{user}`.
    userUrl: '/api/me'
  };
  var hooks = [];
  var leaving = false;
  var source = null;
  var access = null;
  var refreshTimer = null;
  var reopenTimer = null;
  var backoff = 0;
  // Whether this page asked to watch its session (until it leaves).
  var watching = false;
  var channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel(config.channel) : null;
  var SIGNAL_KEY = 'signoff:signed-out';
  // The last other tab's signal acted on (BroadcastChannel and the storage event both carry it).
  var lastSignal = null;
  // Counts cleanups: a token grant answered after one belongs to a session that has ended.
  var epoch = 0;
  // Signed out and staying (`leave: false`): further signals of that end change nothing, until
  // a new session is watched or signed in here.
  var over = false;
  // watch() is finding out whether this page holds a refresh token (token mode).
  var deciding = false;

  function configure(options) {
    for (var k in options) if (Object.prototype.hasOwnProperty.call(options, k)) config[k] = options[k];
    return api;
  }

  /** Runs `fn({ reason })` whenever this browser's session ends, before the page leaves. */
  function onLogout(fn) { hooks.push(fn); return api; }

  function offLogout(fn) {
    hooks = hooks.filter(function (h) { return h !== fn; });
    return api;
  }

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
  function cleanup(reason) {
    epoch += 1;
    access = null;
    if (refreshTimer) clearTimeout(refreshTimer);
    clearLocalStorage();
    var work0 = forgetRefreshToken();
    if (config.clearSessionStorage) { try { sessionStorage.clear(); } catch (_) { /* disabled */ } }
    var event = { reason: reason || 'logout' };
    var work = hooks.map(function (fn) { try { return Promise.resolve(fn(event)); } catch (e) { return Promise.reject(e); } });
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
    watching = false;
    if (reopenTimer) { clearTimeout(reopenTimer); reopenTimer = null; }
    if (source) source.close();
    global.location.replace(url);
  }

  /** Signed out, staying on the page (`leave: false`): no stream, nothing pending; a later
   * sign-in on this page may watch again. */
  function stay() {
    watching = false;
    over = true;
    if (reopenTimer) { clearTimeout(reopenTimer); reopenTimer = null; }
    if (source) { source.close(); source = null; }
    leaving = false;
  }

  /** Someone else ended this session: clean up and show the sign-in page with a notice (or,
   * with `leave: false`, stay signed out). */
  function signedOut(reason) {
    if (leaving || (over && !config.leave)) return;
    leaving = true;
    cleanup(reason || 'revoked').then(function () {
      if (config.leave) leave(config.loginUrl + '?revoked=1&reason=' + encodeURIComponent(reason || 'revoked'));
      else stay();
    });
  }

  function csrfToken() {
    var meta = document.querySelector('meta[name="signoff-csrf"]');
    if (meta && meta.content) return Promise.resolve(meta.content);
    return fetch(config.sessionUrl, { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } })
      .then(function (r) { return r.ok ? r.json() : {}; })
      .then(function (body) { return body.csrf_token || ''; });
  }

  /** A logout that did not happen: the browser is still signed in. */
  function notDone(message, status) {
    var e = new Error('signoff: ' + message);
    e.status = status;
    e.stillSignedIn = true;
    return e;
  }

  function retryAfterSeconds(res) {
    var v = res.headers.get('Retry-After');
    if (v === null || !/^\d+$/.test(v.trim())) return null;
    return parseInt(v, 10);
  }

  function pause(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  function bodyOf(res) {
    return res.json().catch(function () { return null; });
  }

  /** Logs out (scope 'local' by default). Forgets, tells the other tabs and leaves only once
   * the server confirmed (2xx) or said there was no session any more (401); otherwise the
   * promise rejects with `stillSignedIn` set. Resolves with the server's answer and `left`
   * (true once this page is leaving); the page stays (with `{revoked}`) exactly when the
   * server says it did not clear this browser (`cleared: false`: 'others' with a session). `retried` says a busy server was asked again: an
   * earlier try may have done the work, so a count of 0 then means "none left", not "none". */
  function logout(options) {
    options = options || {};
    var scope = options.scope || 'local';
    // Expected to end this page's session (the server's `cleared` decides once it answers).
    var endsHere = scope !== 'others';
    var wasWatching = watching;
    var retried = false;
    // Our own logout ends this session: its event stream will say so, and must not win the
    // race to navigate (this page leaves for returnTo, not for the "signed out" notice).
    if (endsHere) {
      leaving = true;
      if (source) { source.close(); source = null; }
    }
    var send = function () {
      return csrfToken().then(function (token) {
        var headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
        if (token) headers['X-CSRF-Token'] = token;
        if (access) headers.Authorization = 'Bearer ' + access.token;
        return storedRefreshToken().then(function (refresh) {
          var body = { scope: scope };
          if (refresh) body.refresh_token = refresh;
          var init = { method: 'POST', credentials: 'same-origin', headers: headers, body: JSON.stringify(body) };
          if (global.AbortSignal && AbortSignal.timeout) init.signal = AbortSignal.timeout(config.logoutTimeoutMs);
          return fetch(config.logoutUrl, init);
        });
      }, function () { throw notDone('logout not sent (offline?)', 0); });
    };
    // Token mode after a reload (or a sleep): no fresh access token in memory, only the stored
    // refresh token. 'others' and 'global' need the session to speak for, so a fresh access
    // token is fetched first; a refresh token the server refuses (400, 401) is dead already and
    // the logout goes on without it, any other failure is a logout not done.
    var prepare = function () {
      if (scope === 'local' || (access && access.expiresAt - Date.now() > 5000)) return Promise.resolve();
      return storedRefreshToken().then(function (t) {
        if (!t) return null;
        return refresh(true).catch(function (e) {
          if (e && (e.status === 400 || e.status === 401)) return null;
          throw notDone('could not get an access token', e && e.status ? e.status : 0);
        });
      });
    };
    var attempt = function (left) {
      return send().then(function (res) {
        var wait = res.status === 503 ? retryAfterSeconds(res) : null;
        if (wait !== null && left > 0 && wait <= config.logoutRetryMaxSeconds) {
          retried = true;
          return pause(Math.max(wait, 0.2) * 1000).then(function () { return attempt(left - 1); });
        }
        return res;
      }, function (e) {
        if (e && e.stillSignedIn) throw e;
        throw notDone('logout not sent (offline?)', 0);
      });
    };
    return prepare().then(function () { return attempt(config.logoutRetries); }).then(function (res) {
      if (res.status === 401) return { gone: true, body: null };
      if (!res.ok) {
        var why = res.status === 403 ? 'logout refused (cross-site check)' :
          res.status === 503 ? 'the server is busy' : 'logout failed (' + res.status + ')';
        throw notDone(why, res.status);
      }
      return bodyOf(res).then(function (body) {
        if (scope === 'others' && !(body && typeof body.revoked === 'number')) {
          throw notDone('logout answered without a result', res.status);
        }
        return { gone: false, body: body };
      });
    }).then(function (done) {
      var result = Object.assign({}, done.body || {}, { retried: retried, left: false });
      // A browser that had no session any more is signed out here, and nothing else ended;
      // unless a busy server was asked again for 'global', when an earlier try may have ended
      // it all ('others' never ends this browser's own session, so there it still holds).
      var noSession = (scope === 'others' || !retried) && (done.gone || result.no_session === true);
      // The server says whether it cleared this browser; an answer without the flag (an older
      // server) is read as the scope implies.
      var cleared = done.gone || (typeof result.cleared === 'boolean' ? result.cleared :
        scope !== 'others' || result.no_session === true);
      if (!cleared) {
        // Still signed in here: a page that stopped watching in expectation watches again.
        if (endsHere) { leaving = false; if (wasWatching) watch(); }
        return result;
      }
      if (!endsHere) { leaving = true; if (source) { source.close(); source = null; } }
      // `leave: false` stays here, unless told where to go.
      var stays = !config.leave && !options.returnTo;
      var to = stays ? global.location.href :
        noSession && scope !== 'local' ? config.loginUrl + '?no_session=1' :
          done.gone ? config.loginUrl + '?revoked=1&reason=expired' :
            options.returnTo || config.loginUrl + '?logged_out=1';
      // The sign-in's apps take front-channel logouts: signoff's signed-out page loads them,
      // then goes on to where this page was going (back here, for a page that stays).
      if (typeof result.frontchannel_logout === 'string' && !done.gone) {
        to = result.frontchannel_logout + '&next=' + encodeURIComponent(to);
        stays = false;
      }
      var reason = done.gone ? 'expired' : 'logout';
      return cleanup(reason).then(function () {
        announce(reason);
        if (stays) {
          stay();
        } else {
          leave(to);
          result.left = true;
        }
        return result;
      });
    }).catch(function (e) {
      // Still signed in: watch again if this page was watching, and let the caller say so.
      if (endsHere) { leaving = false; if (wasWatching) watch(); }
      throw e;
    });
  }

  function readJson(what) {
    return function (r) {
      if (r.status === 401) return null;
      if (!r.ok) {
        var e = new Error('signoff: ' + what + ' could not be read (' + r.status + ')');
        e.status = r.status;
        throw e;
      }
      return r.json();
    };
  }

  /** This browser's session (GET /auth/session): `{user, session, csrf_token}`, or null when
   * it has none; rejects when the server cannot tell (offline, busy). */
  function session() {
    return fetch(config.sessionUrl, { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } })
      .then(readJson('the session'));
  }

  /** Signs out if the session turns out to be gone: the cookie's, or in token mode (an access
   * token in memory, or a refresh token kept) the tokens'. Offline, nothing is decided. */
  function checkSession() {
    if (access) {
      return tokens.user().then(function (me) { if (!me) signedOut('expired'); }, function () { /* offline */ });
    }
    return fetch(config.sessionUrl, { credentials: 'same-origin', cache: 'no-store', headers: { Accept: 'application/json' } })
      .then(function (r) {
        if (r.status !== 401 || access) return null;
        return holdsRefreshToken().then(function (held) { if (!held) signedOut('expired'); });
      })
      .catch(function () { /* offline: nothing to decide */ });
  }

  /** Leaves the page the moment its session ends, here or in another tab. A stream the
   * server refused (429: too many open, 503: busy) or that dropped is opened again after a
   * pause that doubles each time (with jitter), unless the session turns out to be gone. */
  function watch() {
    over = false;
    if (access) return watchWithToken();
    if (source || reopenTimer || leaving || deciding) return api;
    // Token mode before the first refresh: the refresh token kept says so.
    deciding = true;
    holdsRefreshToken().then(function (held) {
      deciding = false;
      // Signed out meanwhile: nothing to watch.
      if (over || leaving) return;
      if (held) watchWithToken(); else watchWithCookie();
    });
    return api;
  }

  function watchWithCookie() {
    if (global.EventSource && !leaving) watching = true;
    if (!source && !reopenTimer && !leaving && global.EventSource) {
      var es = new EventSource(config.eventsUrl);
      source = es;
      es.onopen = function () { backoff = 0; };
      es.addEventListener('revoked', function (e) {
        var reason = 'revoked';
        try { reason = JSON.parse(e.data).reason || reason; } catch (_) { /* keep default */ }
        es.close();
        announce(reason);
        signedOut(reason);
      });
      es.onerror = function () {
        // The browser reconnects by itself after a dropped stream; an answer other than a
        // stream (401, 429, 503) closes it for good: check the session, then open it again.
        if (es.readyState !== EventSource.CLOSED || source !== es) return;
        source = null;
        checkSession().then(reopenLater);
      };
    }
    return api;
  }

  /** The stream's next pause before it is opened again: 1 s, doubling, with jitter. */
  function reopenLater() {
    if (leaving || !watching || reopenTimer) return;
    backoff = Math.min(backoff ? backoff * 2 : 1, config.watchMaxBackoffSeconds);
    reopenTimer = setTimeout(function () {
      reopenTimer = null;
      if (watching && !leaving) watch();
    }, backoff * (750 + Math.random() * 500));
  }

  /** The reason in a `revoked` event's block of lines. */
  function reasonOf(block) {
    var data = block.split('\n').filter(function (l) { return l.indexOf('data:') === 0; })
      .map(function (l) { return l.slice(5).replace(/^ /, ''); }).join('\n');
    try { return JSON.parse(data).reason || 'revoked'; } catch (_) { return 'revoked'; }
  }

  /** watch() in token mode: EventSource cannot send the access token, so the stream is read
   * with fetch. A token the server no longer takes (401) is refreshed, and a refresh refused
   * signs out; a refused or dropped stream is opened again with growing pauses. */
  function watchWithToken() {
    if (!leaving) watching = true;
    if (source || reopenTimer || leaving || !global.fetch || !global.AbortController) return api;
    var controller = new AbortController();
    var stream = { close: function () { controller.abort(); } };
    source = stream;
    var ended = false;
    tokens.get().then(function (token) {
      return fetch(config.eventsUrl, {
        credentials: 'omit', cache: 'no-store', signal: controller.signal,
        headers: { Accept: 'text/event-stream', Authorization: 'Bearer ' + token }
      });
    }).then(function (res) {
      if (res.status === 401) {
        var e = new Error('signoff: the access token was refused');
        e.status = 401;
        throw e;
      }
      var type = res.headers.get('Content-Type') || '';
      if (!res.ok || !res.body || type.indexOf('text/event-stream') !== 0) {
        throw new Error('signoff: the event stream answered ' + res.status);
      }
      var reader = res.body.getReader();
      var decoder = new TextDecoder();
      var buf = '';
      var pump = function () {
        return reader.read().then(function (chunk) {
          if (chunk.done) throw new Error('signoff: the event stream closed');
          // Heard from: the stream works, so a later drop starts its pauses over.
          backoff = 0;
          buf += decoder.decode(chunk.value, { stream: true }).replace(/\r/g, '');
          var end;
          while ((end = buf.indexOf('\n\n')) !== -1) {
            var block = buf.slice(0, end);
            buf = buf.slice(end + 2);
            if (/^event: ?revoked$/m.test(block)) {
              var reason = reasonOf(block);
              ended = true;
              controller.abort();
              announce(reason);
              signedOut(reason);
              return null;
            }
          }
          if (buf.length > 65536) throw new Error('signoff: the event stream sent too much');
          return pump();
        });
      };
      return pump();
    }).catch(function (e) {
      controller.abort();
      if (ended || source !== stream) return;
      source = null;
      if (leaving) return;
      if (e && e.status === 401) {
        // A refused refresh signs out by itself (refresh reports it).
        refresh().then(reopenLater, reopenLater);
        return;
      }
      reopenLater();
    });
    return api;
  }

  function onSignal(message) {
    if (!message || message.type !== 'signed-out' || message.at === lastSignal) return;
    lastSignal = message.at;
    signedOut(message.reason);
  }
  if (channel) channel.onmessage = function (e) { onSignal(e.data); };
  global.addEventListener('storage', function (e) {
    if (e.key === SIGNAL_KEY && e.newValue) { try { onSignal(JSON.parse(e.newValue)); } catch (_) { /* ignore */ } }
  });
  // Back/forward cache: a restored page may belong to a session that has ended since.
  global.addEventListener('pageshow', function (e) {
    if (e.persisted && (watching || document.documentElement.hasAttribute('data-signoff-watch'))) checkSession();
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

  /** Whether this browser keeps a refresh token, without making the database where it has
   * none (a page that only uses cookies gets no IndexedDB of signoff's). */
  function holdsRefreshToken() {
    if (!global.indexedDB) return Promise.resolve(false);
    var listed = indexedDB.databases ? indexedDB.databases().then(function (dbs) {
      return dbs.some(function (d) { return d.name === config.database; });
    }, function () { return true; }) : Promise.resolve(true);
    return listed.then(function (exists) { return exists ? storedRefreshToken() : null; })
      .then(function (t) { return !!t; });
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
    over = false;
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
      if (!r.ok) {
        var e = new Error('signoff: token grant refused (' + r.status + ')');
        e.status = r.status;
        throw e;
      }
      return r.json();
    });
  }

  /** One refresh in flight across every tab: the Web Lock serialises them, and each reads the
   * refresh token only once it holds the lock, so no tab presents a rotated token. */
  function refresh(quiet) {
    var run = function () {
      var at = epoch;
      return storedRefreshToken().then(function (token) {
        if (!token) throw new Error('signoff: no refresh token');
        return grant({ grant_type: 'refresh_token', refresh_token: token }).then(function (body) {
          // Answered after this browser signed out: the tokens are not taken back in.
          if (at !== epoch) throw new Error('signoff: signed out while refreshing');
          return accept(body);
        }, function (e) {
          // The server refused the refresh token (400, 401): the session is over. Anything
          // else (offline, busy) decides nothing. `quiet`: the caller (a logout) decides.
          if (quiet !== true && e && (e.status === 400 || e.status === 401)) signedOut('refresh_failed');
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
    /** The signed-in user in token mode (GET userUrl with the access token): `{user}`, or null
     * when this browser holds no refresh token or the server refuses it; rejects when the
     * server cannot tell. */
    user: function () {
      var fresh = access && access.expiresAt - Date.now() > config.refreshEarlySeconds * 1000;
      var token = fresh ? Promise.resolve(access.token) : storedRefreshToken().then(function (t) {
        if (!t) return null;
        return refresh(true).catch(function (e) {
          if (e && (e.status === 400 || e.status === 401)) return forgetRefreshToken().then(function () { return null; });
          throw e;
        });
      });
      return token.then(function (t) {
        if (!t) return null;
        return fetch(config.userUrl, { credentials: 'omit', cache: 'no-store', headers: { Accept: 'application/json', Authorization: 'Bearer ' + t } })
          .then(readJson('the user'));
      });
    },
    /** The claims of the access token held in memory (not verified here: for display), or null. */
    claims: function () {
      if (!access) return null;
      try {
        var part = access.token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
        var bytes = Uint8Array.from(atob(part), function (c) { return c.charCodeAt(0); });
        return JSON.parse(new TextDecoder().decode(bytes));
      } catch (_) { return null; }
    },
    /** Whether this browser holds a refresh token. */
    stored: function () { return storedRefreshToken().then(function (t) { return !!t; }); }
  };

  var api = {
    configure: configure, onLogout: onLogout, offLogout: offLogout, logout: logout, watch: watch, cleanup: cleanup,
    session: session, checkSession: checkSession, tokens: tokens, config: config
  };
  global.signoff = api;
  if (document.documentElement.hasAttribute('data-signoff-watch')) watch();
})(typeof window !== 'undefined' ? window : undefined);
