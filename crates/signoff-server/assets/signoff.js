/*! signoff.js — the browser half of signoff. No dependencies, no build step.
 *
 * watch(): listens to /auth/events and leaves for the sign-in page the moment this session
 * is ended anywhere (another device, "log out everywhere", a password change, an admin).
 * Pages that carry the attribute data-signoff-watch on <html> start watching by themselves.
 */
(function () {
  'use strict';

  var config = { loginUrl: '/login', eventsUrl: '/auth/events' };

  function leave(reason) {
    var url = config.loginUrl + '?revoked=1&reason=' + encodeURIComponent(reason || 'revoked');
    window.location.replace(url);
  }

  function watch() {
    if (!window.EventSource) return null;
    var source = new EventSource(config.eventsUrl);
    source.addEventListener('revoked', function (e) {
      var reason = 'revoked';
      try { reason = JSON.parse(e.data).reason || reason; } catch (_) { /* keep default */ }
      source.close();
      leave(reason);
    });
    return source;
  }

  window.signoff = { watch: watch, config: config };
  if (document.documentElement.hasAttribute('data-signoff-watch')) watch();
})();
