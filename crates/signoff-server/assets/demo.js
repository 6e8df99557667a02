/* The demo site's own script: it plays an app that keeps data in the browser (localStorage,
 * sessionStorage, Cache Storage), and lets signoff.js do the logging out. Without JavaScript
 * every form still works. */
(function () {
  'use strict';
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

  // Logout buttons go through signoff.logout(), which also cleans the browser up.
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
      var s = scope ? scope.value : 'local';
      signoff.logout({ scope: s }).then(function (result) {
        if (s === 'others') window.location.replace('/app/sessions?ended=' + (result && result.revoked));
      }).catch(function () { form.submit(); });
    });
  });
})();
