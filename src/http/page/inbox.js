// The inbox page. Marks go through the inbox API with the page's session cookie; the live
// stream's changes patch the one card that changed (never a redraw of the list, which would
// lose keyboard focus and the scroll position); dates and prices are shown in the reader's time
// zone and locale (the server's UTC text stays where the script does not run). The stream
// resumes where the page stands (data-stream-position), so no change is lost between the page
// and its stream, nor while the connection is down. No inline script: the page's CSP allows
// scripts from this server only.
(() => {
  'use strict';

  const main = document.getElementById('alerts');
  const badge = document.getElementById('unread-badge');
  const live = document.getElementById('live-status');
  const readAll = document.getElementById('read-all');
  const signOut = document.getElementById('sign-out');
  // Changes made with the cookie must say they come from this page (see the server's InboxUser).
  const headers = { 'X-Requested-With': 'maestro-inbox' };
  const CHANGES = ['alert.created', 'alert.updated', 'alert.read', 'alert.snoozed',
    'alert.unsnoozed', 'alert.expired', 'alert.dismissed', 'alert.withdrawn'];
  // The last stream position received: where a new connection resumes.
  let position = main.dataset.streamPosition || '';

  // --- the reader's time zone and locale -------------------------------------------------
  const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/i;
  const DAY = /^\d{4}-\d{2}-\d{2}$/;
  const dateTime = new Intl.DateTimeFormat(undefined, {
    weekday: 'short', day: 'numeric', month: 'short', year: 'numeric',
    hour: '2-digit', minute: '2-digit', timeZoneName: 'short',
  });
  // A calendar day is the same day everywhere: formatted in UTC, where it was written.
  const day = new Intl.DateTimeFormat(undefined, {
    weekday: 'short', day: 'numeric', month: 'short', year: 'numeric', timeZone: 'UTC',
  });

  function localize(root) {
    for (const element of root.querySelectorAll('time[datetime]')) {
      const value = element.getAttribute('datetime');
      let text = null;
      if (RFC3339.test(value)) {
        text = dateTime.format(new Date(value));
      } else if (DAY.test(value)) {
        text = day.format(new Date(`${value}T00:00:00Z`));
      }
      if (text && element.textContent !== text) {
        element.textContent = text;
      }
    }
    for (const element of root.querySelectorAll('data[value][data-currency]')) {
      const amount = Number(element.getAttribute('value'));
      try {
        const text = new Intl.NumberFormat(undefined, {
          style: 'currency', currency: element.dataset.currency,
        }).format(amount);
        if (Number.isFinite(amount) && element.textContent !== text) {
          element.textContent = text;
        }
      } catch (e) {
        // Not a currency Intl knows: the server's text stays.
      }
    }
  }

  // --- the badge ---------------------------------------------------------------------------
  function showUnread(count) {
    badge.textContent = String(count);
    badge.dataset.count = String(count);
    const label = count === 1 ? '1 unread alert' : `${count} unread alerts`;
    badge.setAttribute('aria-label', label);
    document.title = count > 0 ? `Inbox (${count} unread) – maestro` : 'Inbox – maestro';
  }

  // --- cards -------------------------------------------------------------------------------
  function element(tag, attributes, ...children) {
    const made = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      made.setAttribute(name, value);
    }
    made.append(...children);
    return made;
  }

  function button(action, id, label, title, quiet) {
    return element('button', {
      type: 'button', class: quiet ? 'button button--quiet' : 'button',
      'data-action': action, 'data-alert-id': id,
    }, label, element('span', { class: 'visually-hidden' }, `: ${title}`));
  }

  // The title and the line under it, as cards.html.jinja writes them.
  function fillHeader(header, item) {
    const title = element('h2', { class: 'alert__title', id: `title-${item.alertId}` });
    if (!item.read) {
      title.append(element('span', { class: 'alert__dot', 'aria-hidden': 'true' }),
        element('span', { class: 'visually-hidden' }, 'Unread: '));
    }
    title.append(item.title);
    const meta = element('p', { class: 'alert__meta' });
    if (item.topic) {
      meta.append(`${item.topic} · `);
    }
    meta.append('Until ', element('time', { datetime: item.expiresAt }, item.expiresAt));
    header.replaceChildren(title, meta);
  }

  function setRead(card, item) {
    card.classList.toggle('alert--read', item.read);
    card.classList.toggle('alert--unread', !item.read);
    card.dataset.read = String(item.read);
    const actions = card.querySelector('.alert__actions');
    const markRead = actions.querySelector('[data-action="read"]');
    if (item.read && markRead) {
      markRead.remove();
    } else if (!item.read && !markRead) {
      actions.prepend(button('read', item.alertId, 'Mark read', item.title, false));
    }
  }

  function build(item) {
    const card = element('li', { class: 'alert', id: `alert-${item.alertId}` });
    card.dataset.alertId = item.alertId;
    const body = element('article', { class: 'alert__body', 'aria-labelledby': `title-${item.alertId}` },
      element('header', { class: 'alert__header' }),
      element('div', { class: 'alert__card' }),
      element('footer', { class: 'alert__actions' },
        button('dismiss', item.alertId, 'Dismiss', item.title, true)));
    card.append(body);
    patch(card, item);
    return card;
  }

  // Changes only what changed, so that a focused button or link elsewhere in the card stays.
  function patch(card, item) {
    if (card.dataset.revision !== String(item.revision)) {
      // The partner changed the card: its markup was checked when it was stored.
      card.querySelector('.alert__card').innerHTML = item.html;
      card.dataset.revision = String(item.revision);
    }
    fillHeader(card.querySelector('.alert__header'), item);
    setRead(card, item);
    localize(card);
  }

  function insert(card) {
    let list = main.querySelector('ul.alerts');
    if (!list) {
      main.replaceChildren();
      list = element('ul', { class: 'alerts', role: 'list' });
      main.append(list);
    }
    // Newest first: alert ids sort by receipt.
    const after = [...list.children].find((other) => other.dataset.alertId < card.dataset.alertId);
    list.insertBefore(card, after || null);
  }

  function removeCard(card) {
    const list = card.parentElement;
    card.remove();
    if (list && !list.children.length) {
      main.replaceChildren(element('p', { class: 'inbox__empty' },
        'No alerts right now. New ones appear here as they arrive.'));
    }
  }

  // Runs `change` keeping what the reader sees where it was: the first card still on screen
  // stays put, and focus lost with a removed element goes to the nearest action instead.
  function keepingPlace(target, removing, change) {
    const cards = [...main.querySelectorAll('li.alert')];
    const anchor = cards.find((card) => !(removing && card === target)
      && card.getBoundingClientRect().bottom > 0);
    const before = anchor ? anchor.getBoundingClientRect().top : 0;
    const focused = document.activeElement;
    const focusedCard = focused && focused.closest ? focused.closest('li.alert') : null;
    const neighbour = focusedCard && (focusedCard.nextElementSibling || focusedCard.previousElementSibling);
    change();
    if (anchor && anchor.isConnected) {
      const moved = anchor.getBoundingClientRect().top - before;
      if (moved) {
        window.scrollBy(0, moved);
      }
    }
    if (focused && focusedCard && !focused.isConnected) {
      const home = focusedCard.isConnected ? focusedCard : neighbour;
      const next = home && home.isConnected && home.querySelector('button[data-action]');
      (next || main).focus();
    }
  }

  function apply(change) {
    showUnread(change.unreadCount);
    const card = document.getElementById(`alert-${change.alertId}`);
    const item = change.item;
    if (!item || item.snoozedUntil) {
      if (card) {
        keepingPlace(card, true, () => removeCard(card));
      }
    } else if (card) {
      keepingPlace(card, false, () => patch(card, item));
    } else {
      keepingPlace(null, false, () => insert(build(item)));
    }
  }

  // The whole list again: only when changes may have been missed (resync).
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
      const focused = document.activeElement && main.contains(document.activeElement);
      main.innerHTML = await response.text();
      localize(main);
      showUnread(Number(response.headers.get('x-unread-count') || '0'));
      if (focused) {
        main.focus();
      }
    }).catch(() => {});
    return reloading;
  }

  // --- actions -----------------------------------------------------------------------------
  async function post(path) {
    return fetch(path, { method: 'POST', credentials: 'same-origin', headers });
  }

  main.addEventListener('click', async (event) => {
    const target = event.target.closest('button[data-action]');
    if (!target) {
      return;
    }
    target.disabled = true;
    const id = target.dataset.alertId;
    const response = await post(`/maestro/v4/inbox/${encodeURIComponent(id)}/${target.dataset.action}`);
    target.disabled = false;
    if (response.status === 401) {
      window.location.reload();
      return;
    }
    if (!response.ok) {
      return;
    }
    const { unreadCount } = await response.json();
    showUnread(unreadCount);
    // Shown at once; the stream's event for it changes nothing more.
    const card = document.getElementById(`alert-${id}`);
    if (card && target.dataset.action === 'read') {
      keepingPlace(card, false, () => setRead(card, { alertId: id, read: true }));
      card.querySelector('.alert__header .alert__dot')?.remove();
      card.querySelector('.alert__title .visually-hidden')?.remove();
    } else if (card && target.dataset.action === 'dismiss') {
      keepingPlace(card, true, () => removeCard(card));
    }
  });

  readAll.hidden = false;
  readAll.addEventListener('click', async () => {
    const response = await post('/maestro/v4/inbox/read-all');
    if (response.ok) {
      showUnread((await response.json()).unreadCount);
    }
  });

  signOut.hidden = false;
  signOut.addEventListener('click', async () => {
    const response = await post('/inbox/logout');
    if (response.ok) {
      stream?.close();
      window.location.replace('/inbox');
    }
  });

  // --- the live stream ---------------------------------------------------------------------
  let stream = null;
  let retry = 1000;

  function remember(event) {
    if (event.lastEventId) {
      position = event.lastEventId;
    }
  }

  function connect() {
    const query = position ? `?lastEventId=${encodeURIComponent(position)}` : '';
    stream = new EventSource(`/maestro/v4/inbox/stream${query}`);
    stream.addEventListener('ready', (event) => {
      remember(event);
      live.textContent = 'Live';
      retry = 1000;
      const ready = JSON.parse(event.data);
      showUnread(ready.unreadCount);
      if (!ready.resumed) {
        reload();
      }
    });
    stream.addEventListener('resync', (event) => {
      remember(event);
      live.textContent = 'Live';
      reload();
    });
    for (const type of CHANGES) {
      stream.addEventListener(type, (event) => {
        remember(event);
        apply(JSON.parse(event.data));
      });
    }
    stream.addEventListener('error', () => {
      live.textContent = 'Reconnecting…';
      // A dropped connection is retried by the browser itself, with Last-Event-ID. One the
      // server refused (a restart, a lapsed session) is closed: start a new one that resumes
      // from the last position received, or sign in again.
      if (stream.readyState === EventSource.CLOSED) {
        stream = null;
        setTimeout(async () => {
          const check = await fetch('/inbox/cards', { credentials: 'same-origin', headers })
            .catch(() => null);
          if (check && check.status === 401) {
            window.location.reload();
          } else {
            connect();
          }
        }, retry);
        retry = Math.min(retry * 2, 30000);
      }
    });
  }

  localize(main);
  connect();
})();
