// The inbox page: marks go through the inbox API with the page's session cookie, and the list
// reloads whenever the live stream reports a change. No inline script: the page's CSP allows
// scripts from this server only.
(() => {
  'use strict';

  const list = document.getElementById('alerts');
  const badge = document.getElementById('unread-badge');
  const live = document.getElementById('live-status');
  // Changes made with the cookie must say they come from this page (see the server's InboxUser).
  const headers = { 'X-Requested-With': 'maestro-inbox' };

  function showUnread(count) {
    badge.textContent = String(count);
    badge.dataset.count = String(count);
    const label = count === 1 ? '1 unread alert' : `${count} unread alerts`;
    badge.setAttribute('aria-label', label);
    document.title = count > 0 ? `Inbox (${count} unread) – maestro` : 'Inbox – maestro';
  }

  let reloading = Promise.resolve();
  function reload() {
    reloading = reloading.then(async () => {
      const response = await fetch('/inbox/cards', { credentials: 'same-origin', headers });
      if (response.status === 401) {
        window.location.reload();
        return;
      }
      if (!response.ok) {
        return;
      }
      const focused = document.activeElement && list.contains(document.activeElement);
      list.innerHTML = await response.text();
      showUnread(Number(response.headers.get('x-unread-count') || '0'));
      if (focused) {
        list.focus();
      }
    }).catch(() => {});
    return reloading;
  }

  list.addEventListener('click', async (event) => {
    const button = event.target.closest('button[data-action]');
    if (!button) {
      return;
    }
    button.disabled = true;
    const id = encodeURIComponent(button.dataset.alertId);
    const response = await fetch(`/maestro/v4/inbox/${id}/${button.dataset.action}`, {
      method: 'POST',
      credentials: 'same-origin',
      headers,
    });
    if (response.ok) {
      showUnread((await response.json()).unreadCount);
    }
    await reload();
  });

  const stream = new EventSource('/maestro/v4/inbox/stream');
  stream.addEventListener('open', () => {
    live.textContent = 'Live';
    // Whatever happened while disconnected is in the reloaded list.
    reload();
  });
  stream.addEventListener('error', () => {
    live.textContent = 'Reconnecting…';
  });
  for (const type of ['alert.created', 'alert.updated', 'alert.read', 'alert.expired',
    'alert.dismissed', 'alert.withdrawn', 'resync']) {
    stream.addEventListener(type, reload);
  }
})();
