/* The demo site's own script: it plays an app that keeps data in the browser (localStorage,
 * sessionStorage, Cache Storage), and lets signoff.js do the logging out. Without JavaScript
 * every form still works. */
(function () {
  'use strict';
  // Times read as people say them ("2 minutes ago", the same rules as views::relative), with
  // the local time on hover; kept current while the page is open.
  function relative(at, now) {
    var seconds = Math.round((at - now) / 1000), n = Math.abs(seconds);
    var MINUTE = 60, HOUR = 3600, DAY = 86400, count, unit;
    if (n < 45) return 'just now';
    if (n < 45 * MINUTE) { count = Math.floor((n + 30) / MINUTE); unit = 'minute'; }
    else if (n < 22 * HOUR) { count = Math.floor((n + 30 * MINUTE) / HOUR); unit = 'hour'; }
    else if (n < 26 * DAY) { count = Math.floor((n + 12 * HOUR) / DAY); unit = 'day'; }
    else if (n < 320 * DAY) { count = Math.floor((n + 15 * DAY) / (30 * DAY)); unit = 'month'; }
    else { count = Math.floor((n + 182 * DAY) / (365 * DAY)); unit = 'year'; }
    count = Math.max(count, 1);
    var amount = count + ' ' + unit + (count === 1 ? '' : 's');
    return seconds > 0 ? 'in ' + amount : amount + ' ago';
  }
  function refreshTimes() {
    document.querySelectorAll('time[datetime]').forEach(function (el) {
      var at = new Date(el.getAttribute('datetime'));
      if (isNaN(at)) return;
      el.title = at.toLocaleString();
      el.textContent = relative(at, new Date());
    });
  }
  refreshTimes();
  setInterval(refreshTimes, 30000);

  // A form answered with itself (an error to correct) sits at the address it was posted to;
  // the address bar is set to the form's own page, so a reload does not post it again.
  var url = document.documentElement.getAttribute('data-url');
  if (url && window.location.pathname !== url) window.history.replaceState(null, '', url);

  // The signed-out page that loads the apps' front-channel logouts in frames goes on once they
  // have loaded (the window's load waits for frames), or after a while whatever they do.
  var onward = document.querySelector('[data-frontchannel-next]');
  if (onward) {
    var next = onward.getAttribute('data-frontchannel-next');
    var gone = false;
    var go = function () {
      if (gone) return;
      gone = true;
      window.location.replace(next);
    };
    if (document.readyState === 'complete') go();
    else window.addEventListener('load', go);
    setTimeout(go, parseInt(onward.getAttribute('data-frontchannel-wait'), 10) || 3000);
  }

  if (!window.signoff) return;
  signoff.configure({ storageKeys: ['demo:*'], unregisterServiceWorkers: true });

  var main = document.querySelector('[data-protected]');
  if (main) {
    var who = document.querySelector('.who');
    localStorage.setItem('demo:profile', JSON.stringify({ email: who ? who.textContent : '', seen: Date.now() }));
    localStorage.setItem('demo:draft', 'a half-written message');
    sessionStorage.setItem('demo:tab', 'scroll position and such');
    if (window.caches) {
      caches.open('demo-api').then(function (c) {
        return c.put('/demo/api/profile', new Response(JSON.stringify({ cached: true }), { headers: { 'Content-Type': 'application/json' } }));
      });
    }
  }

  // Says on the page, next to the form, that signing out did not happen: the user is still
  // signed in and may try again (the button stays).
  function stillSignedIn(form, error) {
    var note = form.parentNode.querySelector('.logout-failed');
    if (!note) {
      note = document.createElement('p');
      note.className = 'notice error logout-failed';
      note.setAttribute('role', 'alert');
      form.parentNode.insertBefore(note, form.parentNode.firstChild);
    }
    var why = error && error.status === 503 ? 'the server is busy' :
      error && error.status === 429 ? 'too many requests' :
      error && error.status === 0 ? 'the server could not be reached' : 'the server could not do it';
    note.textContent = 'You are still signed in: signing out did not go through (' + why + '). ' +
      'Try again in a moment.';
  }

  // Logout buttons go through signoff.logout(), which also cleans the browser up once the
  // server has confirmed the logout, and only then.
  document.querySelectorAll('form[action="/auth/logout"]').forEach(function (form) {
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      var scope = form.querySelector('input[name="scope"]');
      var token = form.querySelector('input[name="csrf_token"]');
      var meta = document.querySelector('meta[name="signoff-csrf"]');
      if (!meta && token) {
        meta = document.createElement('meta');
        meta.name = 'signoff-csrf';
        meta.content = token.value;
        document.head.appendChild(meta);
      }
      var button = form.querySelector('button');
      if (button) button.disabled = true;
      var s = scope ? scope.value : 'local';
      signoff.logout({ scope: s }).then(function (result) {
        if (s === 'others' && !result.left) window.location.replace('/app/sessions?ended=' + result.revoked);
      }, function (error) {
        if (button) button.disabled = false;
        if (error && error.stillSignedIn) stillSignedIn(form, error);
        else form.submit();
      });
    });
  });
})();
