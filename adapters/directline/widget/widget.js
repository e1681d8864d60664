/*
 * Contoso chat widget: a dependency-free Direct Line 3.0 client for the human-handoff bot.
 *
 * Served as a static file at /widget/widget.js; talks to the bot at the same origin under
 * /v3/directline. Everything that comes from the conversation is untrusted and is rendered with
 * textContent / text nodes only; the only markup this file creates is built with DOM APIs.
 */
(() => {
  'use strict';

  // ---- settings --------------------------------------------------------------------------

  const BASE = '/v3/directline';
  const SESSION_KEY = 'contosoChat.session.v1'; // {conversationId, token, watermark, ...}
  const OUTBOX_KEY = 'contosoChat.outbox.v1'; // visitor messages not yet acknowledged
  const VISITOR_KEY = 'contosoChat.visitor.v1'; // the demo visitor form's values
  const UI_KEY = 'contosoChat.ui.v1'; // {open}
  const MAX_CHARS = 4000;
  const PING_MS = 25000; // send "" on the socket this often
  const STALE_MS = 65000; // the server sends a keep-alive every 20 s; silence this long = dead
  const HEALTHY_MS = 10000; // a socket open this long resets the back-off
  const BACKOFF_MAX_MS = 30000;
  const READY_TIMEOUT_MS = 20000;
  const FETCH_TIMEOUT_MS = 20000; // a message waits this long for a connection before failing
  const REFRESH_MARGIN_MS = 5 * 60 * 1000; // refresh the token this long before it expires
  const TYPING_SEND_MS = 3000;
  const TYPING_SHOW_MS = 3000;
  const TYPING_MAX_AGE_MS = 15000; // ignore replayed typing activities older than this
  const DEFAULT_VISITOR = { name: 'Jane Doe', email: 'jane@fabrikam.example', company: 'Fabrikam' };

  const STATUS_TEXT = {
    bot: 'Virtual assistant',
    queued: 'Connecting you to a specialist…',
    accepted: "You're chatting with a specialist",
  };

  // ---- small helpers ---------------------------------------------------------------------

  const store = {
    get(key) {
      try {
        const raw = window.sessionStorage.getItem(key);
        return raw ? JSON.parse(raw) : null;
      } catch {
        return null;
      }
    },
    set(key, value) {
      try {
        window.sessionStorage.setItem(key, JSON.stringify(value));
      } catch {
        /* storage full or disabled: the widget still works for this page */
      }
    },
    remove(key) {
      try {
        window.sessionStorage.removeItem(key);
      } catch {
        /* ignore */
      }
    },
  };

  function randomId() {
    if (window.crypto && typeof window.crypto.randomUUID === 'function') {
      return window.crypto.randomUUID();
    }
    const bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }

  /** Create an element. attrs: text, className, dataset, hidden, on<Event>, or plain attributes. */
  function h(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === 'text') node.textContent = String(value);
      else if (key === 'className') node.className = value;
      else if (key === 'dataset') Object.assign(node.dataset, value);
      else if (key === 'hidden') node.hidden = Boolean(value);
      else if (key.startsWith('on') && typeof value === 'function') {
        node.addEventListener(key.slice(2).toLowerCase(), value);
      } else node.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const SVG_NS = 'http://www.w3.org/2000/svg';
  const ICONS = {
    chat: ['M21 11.5a8.4 8.4 0 0 1-12.3 7.4L3 20.5l1.6-5.1A8.5 8.5 0 1 1 21 11.5z'],
    chevronDown: ['M6 9l6 6 6-6'],
    close: ['M6 6l12 12', 'M18 6L6 18'],
    send: ['M4 12l16-8-6 16-3-7-7-1z', 'M11 13l9-9'],
    person: ['M12 12a4 4 0 1 0 0-8 4 4 0 0 0 0 8z', 'M4 21a8 8 0 0 1 16 0'],
    bot: [
      'M6 8h12a3 3 0 0 1 3 3v6a3 3 0 0 1-3 3H6a3 3 0 0 1-3-3v-6a3 3 0 0 1 3-3z',
      'M12 4v4',
      'M9 13.5v1',
      'M15 13.5v1',
    ],
    check: ['M5 12.5l4.5 4.5L19 7.5'],
    retry: ['M4 12a8 8 0 1 0 2.4-5.7L4 8.6', 'M4 4v4.6h4.6'],
    plus: ['M12 5v14', 'M5 12h14'],
    end: ['M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18z', 'M9 9l6 6', 'M15 9l-6 6'],
    alert: ['M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18z', 'M12 7.5v5.5', 'M12 16.5v.01'],
    wifiOff: ['M2 2l20 20', 'M8.5 16.5a5 5 0 0 1 7 0', 'M5 12.9a10 10 0 0 1 5.2-2.8', 'M12 20h.01'],
  };

  function icon(name, size = 20) {
    const svg = document.createElementNS(SVG_NS, 'svg');
    for (const [k, v] of Object.entries({
      viewBox: '0 0 24 24',
      width: size,
      height: size,
      fill: 'none',
      stroke: 'currentColor',
      'stroke-width': '2',
      'stroke-linecap': 'round',
      'stroke-linejoin': 'round',
      'aria-hidden': 'true',
      focusable: 'false',
    })) {
      svg.setAttribute(k, String(v));
    }
    for (const d of ICONS[name] || []) {
      const path = document.createElementNS(SVG_NS, 'path');
      path.setAttribute('d', d);
      svg.append(path);
    }
    return svg;
  }

  function hhmm(timestamp) {
    const date = timestamp ? new Date(timestamp) : new Date();
    if (Number.isNaN(date.getTime())) return '';
    return `${String(date.getHours()).padStart(2, '0')}:${String(date.getMinutes()).padStart(2, '0')}`;
  }

  function initials(name) {
    const words = String(name || '')
      .trim()
      .split(/\s+/)
      .filter(Boolean);
    if (!words.length) return '?';
    const first = Array.from(words[0])[0] || '';
    const last = words.length > 1 ? Array.from(words[words.length - 1])[0] || '' : '';
    return (first + last).toUpperCase();
  }

  function safeHttpUrl(candidate) {
    try {
      const url = new URL(candidate);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
      if (!url.hostname || url.username || url.password) return null; // no user@host disguises
      return url;
    } catch {
      return null;
    }
  }

  const URL_PATTERN = /\bhttps?:\/\/[^\s<>"'`]+/gi;

  /** Trim punctuation that ends a sentence rather than the URL; keep balanced parentheses. */
  function trimUrl(raw) {
    let url = raw;
    for (;;) {
      const last = url.slice(-1);
      if ('.,;:!?\'"*]}'.includes(last) && last !== '') url = url.slice(0, -1);
      else if (last === ')' && (url.match(/\(/g) || []).length < (url.match(/\)/g) || []).length) {
        url = url.slice(0, -1);
      } else return url;
    }
  }

  /**
   * Message text as text nodes; http(s) URLs become links whose text is exactly the URL.
   * Nothing here parses markup: the text can never become HTML.
   */
  function renderText(text) {
    const fragment = document.createDocumentFragment();
    let cursor = 0;
    for (const match of text.matchAll(URL_PATTERN)) {
      const raw = trimUrl(match[0]);
      const parsed = raw && safeHttpUrl(raw);
      if (!parsed) continue;
      const start = match.index;
      if (start > cursor) fragment.append(document.createTextNode(text.slice(cursor, start)));
      const link = h('a', {
        href: raw,
        target: '_blank',
        rel: 'noopener noreferrer nofollow',
        title: parsed.href,
        text: raw,
      });
      fragment.append(link);
      cursor = start + raw.length;
    }
    if (cursor < text.length) fragment.append(document.createTextNode(text.slice(cursor)));
    return fragment;
  }

  class ApiError extends Error {
    constructor(status, code, message, retryAfter = 0) {
      super(message);
      this.status = status;
      this.code = code;
      this.retryAfter = retryAfter; // seconds the server asked us to wait (429, 503)
    }
  }

  const STALE = new Error('stale'); // thrown when a newer conversation replaced this attempt

  async function api(method, path, { token, body } = {}) {
    const headers = { Accept: 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let response;
    const controller = typeof AbortController === 'function' ? new AbortController() : null;
    const timer = controller ? setTimeout(() => controller.abort(), FETCH_TIMEOUT_MS) : 0;
    try {
      response = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'same-origin',
        cache: 'no-store',
        signal: controller ? controller.signal : undefined,
      });
    } catch {
      clearTimeout(timer);
      throw new ApiError(0, 'NetworkError', 'No connection to the chat service.');
    }
    clearTimeout(timer);
    let data = null;
    try {
      const raw = await response.text();
      data = raw ? JSON.parse(raw) : {};
    } catch {
      data = null;
    }
    if (!response.ok) {
      const err = data && typeof data === 'object' && data.error && typeof data.error === 'object'
        ? data.error
        : {};
      const message = typeof err.message === 'string' && err.message
        ? err.message
        : `The chat service answered ${response.status}.`;
      const retryAfter = Number(response.headers.get('Retry-After')) || 0;
      throw new ApiError(response.status, String(err.code || 'HttpError'), message, retryAfter);
    }
    if (!data || typeof data !== 'object') {
      throw new ApiError(response.status, 'BadResponse', 'The chat service sent an unreadable answer.');
    }
    return data;
  }

  const enc = encodeURIComponent;

  // ---- state -----------------------------------------------------------------------------

  const S = {
    epoch: 0, // bumped whenever the conversation is replaced; stale async work checks it
    conversationId: null,
    token: null,
    expiresAt: 0,
    refreshAt: 0,
    watermark: null, // last watermark received (persisted)
    renderedWatermark: null, // what this page has rendered; null = replay from the start
    userId: null,
    handoff: 'bot',
    ready: false, // conversation id + token usable for POSTs
    contextSent: false, // visitor.context sent for this conversation on this page
    open: false,
    unread: 0,
  };
  const pageLoadedAt = Date.now();
  const seen = new Map(); // activity id -> element (or true for non-rendered activities)
  const outbox = new Map(); // clientActivityID -> entry
  let readyWaiters = [];

  // ---- DOM -------------------------------------------------------------------------------

  const ui = {};

  function build() {
    ui.launcherIcon = h('span', { className: 'cw-launcher-icon' }, icon('chat', 26));
    ui.badge = h('span', { className: 'cw-badge', hidden: true, 'aria-hidden': 'true' });
    ui.launcher = h(
      'button',
      {
        type: 'button',
        id: 'chat-launcher',
        className: 'cw-launcher',
        'aria-label': 'Open chat',
        'aria-expanded': 'false',
        'aria-controls': 'chat-panel',
        onClick: () => (S.open ? closePanel() : openPanel()),
      },
      ui.launcherIcon,
      ui.badge,
    );

    ui.statusText = h('span', { className: 'cw-status-text', text: STATUS_TEXT.bot });
    ui.status = h(
      'p',
      { id: 'chat-status', className: 'cw-status', role: 'status' },
      h('span', { className: 'cw-status-dot', 'aria-hidden': 'true' }),
      ui.statusText,
      h(
        'span',
        { className: 'cw-dots', 'aria-hidden': 'true' },
        h('i'),
        h('i'),
        h('i'),
      ),
    );
    ui.close = h(
      'button',
      {
        type: 'button',
        id: 'chat-close',
        className: 'cw-icon-btn',
        'aria-label': 'Minimise chat',
        title: 'Minimise',
        onClick: () => closePanel(),
      },
      icon('chevronDown', 22),
    );
    const header = h(
      'header',
      { className: 'cw-header' },
      h('div', { className: 'cw-header-avatar', 'aria-hidden': 'true' }, icon('chat', 20)),
      h(
        'div',
        { className: 'cw-header-text' },
        h('h2', { id: 'chat-title', className: 'cw-title', text: 'Contoso Support' }),
        ui.status,
      ),
      ui.close,
    );

    ui.bannerText = h('span', { text: 'Reconnecting…' });
    ui.banner = h(
      'div',
      { id: 'chat-banner', className: 'cw-banner', role: 'status', hidden: true },
      h('span', { className: 'cw-spinner', 'aria-hidden': 'true' }),
      ui.bannerText,
      h('button', {
        type: 'button',
        className: 'cw-link',
        text: 'Retry now',
        onClick: () => {
          failures = 0;
          scheduleConnect(0);
        },
      }),
    );

    ui.empty = h(
      'div',
      { className: 'cw-empty' },
      h('div', { className: 'cw-empty-icon', 'aria-hidden': 'true' }, icon('chat', 28)),
      h('p', { className: 'cw-empty-title', text: 'Hi there! How can we help?' }),
      h('p', {
        className: 'cw-empty-text',
        text: 'Our virtual assistant answers right away, and a specialist from our team can join whenever you need a person.',
      }),
    );
    ui.log = h('div', {
      id: 'chat-log',
      className: 'cw-log',
      role: 'log',
      'aria-live': 'polite',
      'aria-relevant': 'additions',
      'aria-label': 'Conversation',
    });
    ui.typingText = h('span', { className: 'cw-typing-text' });
    ui.typing = h(
      'div',
      { id: 'chat-typing', className: 'cw-typing', hidden: true },
      h('span', { className: 'cw-dots cw-dots--dark', 'aria-hidden': 'true' }, h('i'), h('i'), h('i')),
      ui.typingText,
    );
    ui.scroll = h('div', { className: 'cw-scroll' }, ui.empty, ui.log, ui.typing);
    ui.scroll.addEventListener('scroll', () => {
      S.stick = nearBottom();
    });

    ui.talk = h(
      'button',
      { type: 'button', id: 'talk-to-person', className: 'cw-chip', onClick: onTalkToPerson },
      icon('person', 16),
      h('span', { text: 'Talk to a person' }),
    );
    ui.end = h(
      'button',
      { type: 'button', id: 'end-chat', className: 'cw-chip cw-chip--danger', hidden: true, onClick: onEndChat },
      icon('end', 16),
      h('span', { text: 'End chat' }),
    );
    ui.newConversation = h('button', {
      type: 'button',
      id: 'new-conversation',
      className: 'cw-link',
      text: 'New conversation',
      onClick: () => newConversation(),
    });
    const actions = h(
      'div',
      { className: 'cw-actions' },
      ui.talk,
      ui.end,
      h('span', { className: 'cw-spacer' }),
      ui.newConversation,
    );

    ui.input = h('textarea', {
      id: 'chat-input',
      className: 'cw-input',
      rows: '1',
      maxlength: String(MAX_CHARS),
      placeholder: 'Type your message…',
      autocomplete: 'off',
      'aria-describedby': 'chat-hint',
    });
    ui.input.addEventListener('keydown', onInputKeyDown);
    ui.input.addEventListener('input', onInput);
    ui.send = h(
      'button',
      { type: 'submit', id: 'chat-send', className: 'cw-send', 'aria-label': 'Send message', disabled: true },
      icon('send', 20),
    );
    ui.counter = h('span', { className: 'cw-counter' });
    ui.form = h(
      'form',
      { className: 'cw-composer', onSubmit: onSubmit },
      h('label', { for: 'chat-input', className: 'cw-sr-only', text: 'Message' }),
      ui.input,
      ui.send,
    );
    const footer = h(
      'div',
      { className: 'cw-footer' },
      h('span', { id: 'chat-hint', text: 'Enter to send · Shift+Enter for a new line' }),
      ui.counter,
    );

    ui.panel = h(
      'section',
      {
        id: 'chat-panel',
        className: 'cw-panel',
        role: 'dialog',
        'aria-modal': 'false',
        'aria-labelledby': 'chat-title',
        hidden: true,
        dataset: { state: 'bot' },
      },
      header,
      ui.banner,
      ui.scroll,
      actions,
      ui.form,
      footer,
    );
    ui.panel.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') {
        event.stopPropagation();
        closePanel();
      }
    });

    ui.root = h('div', { id: 'chat-root', className: 'cw' }, ui.panel, ui.launcher);
    document.body.append(ui.root);
  }

  // ---- panel -----------------------------------------------------------------------------

  function openPanel({ focus = true } = {}) {
    S.open = true;
    ui.panel.hidden = false;
    ui.root.classList.add('cw--open');
    ui.launcher.setAttribute('aria-expanded', 'true');
    ui.launcher.setAttribute('aria-label', 'Close chat');
    ui.launcherIcon.replaceChildren(icon('chevronDown', 26));
    S.unread = 0;
    renderBadge();
    store.set(UI_KEY, { open: true });
    scrollToBottom();
    if (focus) ui.input.focus({ preventScroll: true });
    if (!S.ready && !connectRun) scheduleConnect(0);
  }

  function closePanel() {
    S.open = false;
    ui.panel.hidden = true;
    ui.root.classList.remove('cw--open');
    ui.launcher.setAttribute('aria-expanded', 'false');
    ui.launcher.setAttribute('aria-label', 'Open chat');
    ui.launcherIcon.replaceChildren(icon('chat', 26));
    store.set(UI_KEY, { open: false });
    ui.launcher.focus({ preventScroll: true });
  }

  function renderBadge() {
    ui.badge.hidden = S.unread === 0;
    ui.badge.textContent = S.unread > 9 ? '9+' : String(S.unread);
    ui.launcher.setAttribute(
      'aria-label',
      S.open ? 'Close chat' : S.unread ? `Open chat, ${S.unread} new message${S.unread > 1 ? 's' : ''}` : 'Open chat',
    );
  }

  function nearBottom() {
    const el = ui.scroll;
    return el.scrollHeight - el.scrollTop - el.clientHeight < 48;
  }

  function scrollToBottom() {
    ui.scroll.scrollTop = ui.scroll.scrollHeight;
    S.stick = true;
  }

  function afterAppend(force = false) {
    ui.empty.hidden = ui.log.childElementCount > 0;
    if (force || S.stick !== false) scrollToBottom();
  }

  /** Where a new transcript item goes: before the visitor's messages that are still sending. */
  function insertItem(node, { force = false } = {}) {
    const firstSending = ui.log.querySelector('.msg[data-status="sending"]');
    if (firstSending && firstSending !== node) ui.log.insertBefore(node, firstSending);
    else ui.log.append(node);
    afterAppend(force);
  }

  function notice(text, kind = 'info') {
    const node = h(
      'div',
      { className: `cw-notice cw-notice--${kind}` },
      kind === 'error' ? icon('alert', 14) : null,
      h('span', { text }),
    );
    insertItem(node);
    return node;
  }

  // ---- rendering messages ----------------------------------------------------------------

  function roleOf(activity) {
    const from = activity.from && typeof activity.from === 'object' ? activity.from : {};
    if (from.role === 'user') return 'user';
    const handoff = activity.channelData && typeof activity.channelData === 'object'
      ? activity.channelData.handoff
      : null;
    return handoff && typeof handoff === 'object' && handoff.senderRole === 'specialist'
      ? 'specialist'
      : 'bot';
  }

  function senderName(activity, role) {
    if (role === 'user') return 'You';
    const name = activity.from && typeof activity.from.name === 'string' ? activity.from.name.trim() : '';
    return name || (role === 'specialist' ? 'Specialist' : 'Virtual assistant');
  }

  function messageElement({ role, name, text, timestamp, id }) {
    let avatar = null;
    if (role === 'bot') avatar = h('div', { className: 'msg-avatar', 'aria-hidden': 'true' }, icon('bot', 18));
    if (role === 'specialist') {
      avatar = h('div', { className: 'msg-avatar', 'aria-hidden': 'true', text: initials(name) });
    }
    const head = h(
      'div',
      { className: 'msg-head' },
      h('span', { className: 'msg-sender', text: name }),
      role === 'specialist' ? h('span', { className: 'msg-badge', text: 'Specialist' }) : null,
    );
    const textEl = h('div', { className: 'msg-text' });
    textEl.append(renderText(text));
    const time = h('time', { className: 'msg-time', text: hhmm(timestamp) });
    if (timestamp) time.setAttribute('datetime', timestamp);
    const status = h('span', { className: 'msg-status' });
    const body = h(
      'div',
      { className: 'msg-body' },
      head,
      h('div', { className: 'msg-bubble' }, textEl),
      h('div', { className: 'msg-meta' }, time, status),
    );
    const node = h('div', { className: `msg msg--${role}`, dataset: { role } }, avatar, body);
    if (id) node.dataset.id = id;
    return node;
  }

  function renderIncoming(activity, role) {
    const text = typeof activity.text === 'string' ? activity.text : '';
    if (!text.trim()) return null;
    const node = messageElement({
      role,
      name: senderName(activity, role),
      text,
      timestamp: typeof activity.timestamp === 'string' ? activity.timestamp : '',
      id: typeof activity.id === 'string' ? activity.id : '',
    });
    if (role === 'user') setDelivered(node);
    insertItem(node, { force: role === 'user' });
    return node;
  }

  function setDelivered(node) {
    node.dataset.status = 'delivered';
    const status = node.querySelector('.msg-status');
    status.replaceChildren(icon('check', 14), h('span', { className: 'cw-sr-only', text: 'Delivered' }));
    status.title = 'Delivered';
  }

  function renderEntryStatus(entry) {
    const node = entry.el;
    node.dataset.status = entry.status;
    const status = node.querySelector('.msg-status');
    status.removeAttribute('title');
    if (entry.status === 'sending') {
      status.replaceChildren(h('span', { text: 'Sending…' }));
    } else if (entry.status === 'sent') {
      status.replaceChildren(h('span', { text: 'Sent' }));
    } else if (entry.status === 'delivered') {
      setDelivered(node);
    } else if (entry.status === 'failed') {
      const parts = [h('span', { className: 'msg-failed', text: 'Not sent — ' })];
      parts.push(
        h(
          'button',
          {
            type: 'button',
            className: 'msg-retry',
            'aria-label': 'Retry sending this message',
            onClick: () => retry(entry),
          },
          icon('retry', 12),
          h('span', { text: 'retry' }),
        ),
      );
      if (entry.error) parts.push(h('span', { className: 'msg-error', text: entry.error }));
      status.replaceChildren(...parts);
    }
  }

  // ---- a specialist edited or deleted a message (Teams messageUpdate / messageDelete) -------

  function amendMessage(activity) {
    const target = typeof activity.replyToId === 'string' ? activity.replyToId : '';
    const node = target ? ui.log.querySelector(`.msg[data-id="${CSS.escape(target)}"]`) : null;
    if (!node) return;
    const textEl = node.querySelector('.msg-text');
    if (activity.type === 'messageDelete') {
      node.dataset.deleted = 'true';
      textEl.replaceChildren(h('em', { text: 'This message was deleted.' }));
      return;
    }
    const text = typeof activity.text === 'string' ? activity.text : '';
    textEl.replaceChildren(renderText(text));
    node.dataset.edited = 'true';
    const meta = node.querySelector('.msg-meta');
    if (meta && !meta.querySelector('.msg-edited')) {
      meta.prepend(h('span', { className: 'msg-edited', text: 'edited · ' }));
    }
  }

  // ---- suggested actions (e.g. "which team can help?") -------------------------------------

  function clearChoices() {
    for (const node of ui.log.querySelectorAll('.msg-choices')) node.remove();
  }

  // Direct Line suggestedActions as buttons under the bot's message; a click sends the action's
  // text (shown as the visitor's message) with its value, as Web Chat does for messageBack.
  function renderChoices(node, suggested) {
    const actions = suggested && Array.isArray(suggested.actions) ? suggested.actions : [];
    const usable = actions.filter((a) => a && typeof a.title === 'string' && a.title.trim());
    if (!usable.length) return;
    clearChoices();
    const row = h('div', { className: 'msg-choices', role: 'group', 'aria-label': 'Choose an option' });
    for (const action of usable.slice(0, 8)) {
      const label = action.title.slice(0, 80);
      const text = typeof action.text === 'string' && action.text ? action.text : label;
      row.append(
        h(
          'button',
          {
            type: 'button',
            className: 'msg-choice',
            onClick: () => sendMessage(text.slice(0, MAX_CHARS), action.value),
          },
          h('span', { text: label }),
        ),
      );
    }
    node.after(row);
    afterAppend();
  }

  // ---- typing indicator ------------------------------------------------------------------

  let typingTimer = 0;

  function showTyping(name) {
    ui.typingText.textContent = `${name || 'Someone'} is typing…`;
    const wasAtBottom = nearBottom();
    ui.typing.hidden = false;
    if (wasAtBottom) scrollToBottom();
    clearTimeout(typingTimer);
    typingTimer = setTimeout(hideTyping, TYPING_SHOW_MS);
  }

  function hideTyping() {
    clearTimeout(typingTimer);
    ui.typing.hidden = true;
  }

  // ---- handoff state ---------------------------------------------------------------------

  function setHandoff(rawState) {
    const state = rawState === 'queued' || rawState === 'accepted' ? rawState : 'bot';
    S.handoff = state;
    ui.panel.dataset.state = state;
    ui.statusText.textContent = STATUS_TEXT[state];
    ui.talk.hidden = state !== 'bot';
    ui.end.hidden = state === 'bot';
    ui.talk.disabled = false;
    ui.end.disabled = false;
  }

  // ---- the activity stream ---------------------------------------------------------------

  function handleActivity(activity, { lastInFrame, replayFrame }) {
    if (!activity || typeof activity !== 'object') return;
    const id = typeof activity.id === 'string' && activity.id ? activity.id : null;
    const role = roleOf(activity);
    const fromVisitor = role === 'user';
    if (activity.type === 'message' && fromVisitor) {
      // Our own message's echo: it confirms delivery even when the POST's answer came first
      // (and already registered the id).
      const clientId = activity.channelData && typeof activity.channelData === 'object'
        ? activity.channelData.clientActivityID
        : null;
      const entry = typeof clientId === 'string' ? outbox.get(clientId) : null;
      if (entry) {
        confirmEntry(entry, id, activity.timestamp);
        return;
      }
    }
    if (id && seen.has(id)) return;

    if (activity.type === 'message') {
      if (fromVisitor) {
        clearChoices();
        const node = renderIncoming(activity, 'user');
        if (id) seen.set(id, node || true);
        return;
      }
      hideTyping();
      const node = renderIncoming(activity, role);
      if (id) seen.set(id, node || true);
      if (node) renderChoices(node, activity.suggestedActions);
      if (node && !S.open && isFresh(activity)) {
        S.unread += 1;
        renderBadge();
      }
      return;
    }
    if (id) seen.set(id, true);
    if (activity.type === 'event' && !fromVisitor && activity.name === 'handoff.status') {
      const value = activity.value && typeof activity.value === 'object' ? activity.value : {};
      setHandoff(value.state);
      return;
    }
    if ((activity.type === 'messageUpdate' || activity.type === 'messageDelete') && !fromVisitor) {
      amendMessage(activity);
      return;
    }
    if (activity.type === 'typing' && !fromVisitor && lastInFrame) {
      if (replayFrame && !isFresh(activity, TYPING_MAX_AGE_MS)) return;
      showTyping(senderName(activity, role));
    }
  }

  function isFresh(activity, maxAgeMs = 0) {
    const at = Date.parse(activity.timestamp);
    if (Number.isNaN(at)) return true;
    if (maxAgeMs) return Date.now() - at < maxAgeMs;
    return at >= pageLoadedAt - 5000;
  }

  function confirmEntry(entry, id, timestamp) {
    if (id) {
      entry.el.dataset.id = id;
      seen.set(id, entry.el);
    }
    if (typeof timestamp === 'string') {
      const time = entry.el.querySelector('.msg-time');
      time.textContent = hhmm(timestamp);
      time.setAttribute('datetime', timestamp);
    }
    const wasSending = entry.el.dataset.status === 'sending' || entry.el.dataset.status === 'failed';
    entry.status = 'delivered';
    entry.error = '';
    outbox.delete(entry.clientId);
    persistOutbox();
    if (wasSending) {
      // It now has a place in the conversation: move it out of the "still sending" tail.
      entry.el.remove();
      entry.el.dataset.status = 'delivered';
      insertItem(entry.el);
    }
    renderEntryStatus(entry);
  }

  // ---- the socket ------------------------------------------------------------------------

  let socket = null;
  let socketSeq = 0;
  let lastFrameAt = 0;
  let pingTimer = 0;
  let healthyTimer = 0;
  let failures = 0;
  let connectTimer = 0;
  let connectRun = 0;
  let runSeq = 0;
  let unloading = false;

  function openSocket(url, epoch) {
    closeSocket();
    const mySeq = ++socketSeq;
    let opened = false;
    let firstFrame = true;
    const ws = new WebSocket(url);
    socket = ws;
    lastFrameAt = Date.now();

    ws.addEventListener('open', () => {
      if (mySeq !== socketSeq) return;
      opened = true;
      lastFrameAt = Date.now();
      setBanner(null);
      clearTimeout(healthyTimer);
      healthyTimer = setTimeout(() => {
        if (mySeq === socketSeq) failures = 0;
      }, HEALTHY_MS);
    });
    ws.addEventListener('message', (event) => {
      if (mySeq !== socketSeq || epoch !== S.epoch) return;
      lastFrameAt = Date.now();
      if (typeof event.data !== 'string' || !event.data.trim()) return; // keep-alive
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (!frame || typeof frame !== 'object') return;
      const activities = Array.isArray(frame.activities) ? frame.activities : [];
      const replayFrame = firstFrame;
      firstFrame = false;
      activities.forEach((activity, index) => {
        try {
          handleActivity(activity, { lastInFrame: index === activities.length - 1, replayFrame });
        } catch (err) {
          console.error('chat widget: could not show an activity', err);
        }
      });
      if (frame.watermark !== undefined && frame.watermark !== null && frame.watermark !== '') {
        S.watermark = String(frame.watermark);
        S.renderedWatermark = S.watermark;
        saveSession();
      }
    });
    ws.addEventListener('close', (event) => {
      if (mySeq !== socketSeq) return; // replaced on purpose
      socket = null;
      clearTimeout(healthyTimer);
      if (unloading || epoch !== S.epoch) return;
      if (event.code === 1000 && event.reason === 'idle') {
        // Nothing happened for long: reconnect (and replay) when the visitor comes back.
        dormant = true;
        S.ready = false;
        clearInterval(pingTimer);
        return;
      }
      if (!opened) failures += 1;
      onSocketLost();
    });
    clearInterval(pingTimer);
    pingTimer = setInterval(() => {
      if (mySeq !== socketSeq) return;
      if (Date.now() - lastFrameAt > STALE_MS) {
        // Silent for too long (sleeping laptop, dead proxy): drop it and reconnect.
        closeSocket();
        onSocketLost();
        return;
      }
      if (ws.readyState === WebSocket.OPEN) {
        try {
          ws.send('');
        } catch {
          /* the close handler reconnects */
        }
      }
    }, PING_MS);
  }

  function closeSocket() {
    socketSeq += 1; // disown the old socket's events
    clearInterval(pingTimer);
    clearTimeout(healthyTimer);
    if (socket) {
      try {
        socket.close(1000);
      } catch {
        /* ignore */
      }
    }
    socket = null;
  }

  let dormant = false; // closed for idleness: no socket until the visitor is back

  function wake() {
    if (!dormant) return;
    dormant = false;
    scheduleConnect(0);
  }

  function onSocketLost() {
    setBanner('Reconnecting…');
    scheduleConnect(failures ? backoff() : 250);
  }

  function backoff() {
    return Math.min(BACKOFF_MAX_MS, 1000 * 2 ** Math.max(0, failures - 1));
  }

  function setBanner(text) {
    if (!text) {
      ui.banner.hidden = true;
      return;
    }
    ui.bannerText.textContent = text;
    ui.banner.hidden = false;
  }

  // ---- connecting ------------------------------------------------------------------------

  function scheduleConnect(delay) {
    clearTimeout(connectTimer);
    connectTimer = setTimeout(runConnect, delay);
  }

  async function runConnect() {
    if (connectRun) return;
    const run = ++runSeq;
    connectRun = run;
    const epoch = S.epoch;
    let error = null;
    try {
      await establish(epoch);
    } catch (err) {
      error = err;
    }
    if (connectRun === run) connectRun = 0;
    if (epoch !== S.epoch || error === STALE) return; // a newer conversation took over
    if (!error) return;
    failures += 1;
    const delay = backoff();
    console.warn(`chat widget: connection failed (${error.message}); retrying in ${delay} ms`);
    setBanner(error.status === 0 ? 'Reconnecting… (offline)' : 'Reconnecting…');
    scheduleConnect(delay);
  }

  async function establish(epoch) {
    const check = () => {
      if (epoch !== S.epoch) throw STALE;
    };
    if (S.conversationId && S.token) {
      const watermark = S.renderedWatermark || '0';
      try {
        const resumed = await api(
          'GET',
          `${BASE}/conversations/${enc(S.conversationId)}?watermark=${enc(watermark)}`,
          { token: S.token },
        );
        check();
        if (typeof resumed.token === 'string' && resumed.token) S.token = resumed.token;
        if (resumed.expires_in !== undefined) setExpiry(resumed.expires_in);
        saveSession();
        openSocket(String(resumed.streamUrl), epoch);
        connected(epoch);
        return;
      } catch (err) {
        if (err === STALE) throw err;
        if (err.status !== 403 && err.status !== 404) throw err;
        check();
        conversationLost(err.status === 404 ? 'Your previous chat has ended.' : 'Your previous chat session expired.');
      }
    }
    const name = visitor().name || 'Visitor';
    const issued = await api('POST', `${BASE}/tokens/generate`, { body: { user: { name } } });
    check();
    const started = await api('POST', `${BASE}/conversations`, { token: String(issued.token) });
    check();
    S.conversationId = String(started.conversationId || issued.conversationId);
    S.token = String(started.token || issued.token);
    setExpiry(started.expires_in !== undefined ? started.expires_in : issued.expires_in);
    S.watermark = null;
    S.renderedWatermark = null;
    S.contextSent = false;
    saveSession();
    openSocket(String(started.streamUrl), epoch);
    connected(epoch);
  }

  function connected(epoch) {
    S.ready = true;
    const waiters = readyWaiters;
    readyWaiters = [];
    waiters.forEach((w) => w.resolve());
    scheduleRefresh();
    if (!S.contextSent) {
      S.contextSent = true;
      sendContext(epoch).catch(() => {});
    }
  }

  /** The stored conversation is gone (404) or its token expired (403): start over. */
  function conversationLost(message) {
    const hadMessages = ui.log.querySelector('.msg') !== null;
    forgetConversation();
    if (hadMessages && message) notice(`${message} A new conversation has started.`);
  }

  /** Abandon the conversation and every piece of async work still running for it. */
  function dropConversation() {
    S.epoch += 1;
    connectRun = 0;
    clearTimeout(connectTimer);
    forgetConversation();
  }

  function forgetConversation() {
    S.conversationId = null;
    S.token = null;
    S.expiresAt = 0;
    S.refreshAt = 0;
    S.watermark = null;
    S.renderedWatermark = null;
    S.ready = false;
    S.contextSent = false;
    clearTimeout(refreshTimer);
    closeSocket();
    store.remove(SESSION_KEY);
    setHandoff('bot');
    hideTyping();
  }

  function waitReady(timeoutMs = READY_TIMEOUT_MS) {
    if (S.ready) return Promise.resolve();
    dormant = false;
    if (!connectRun) scheduleConnect(0);
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        readyWaiters = readyWaiters.filter((w) => w !== waiter);
        reject(new ApiError(0, 'NotConnected', 'Could not reach the chat service.'));
      }, timeoutMs);
      readyWaiters.push(waiter);
    });
  }

  // ---- tokens ----------------------------------------------------------------------------

  let refreshTimer = 0;

  function setExpiry(expiresIn) {
    const ttlMs = Math.max(0, Number(expiresIn) || 0) * 1000;
    const now = Date.now();
    S.expiresAt = now + ttlMs;
    S.refreshAt = now + Math.max(ttlMs - Math.min(REFRESH_MARGIN_MS, ttlMs / 2), 5000);
  }

  function scheduleRefresh() {
    clearTimeout(refreshTimer);
    if (!S.token || !S.refreshAt) return;
    refreshTimer = setTimeout(refreshToken, Math.max(0, S.refreshAt - Date.now()));
  }

  async function refreshToken() {
    const epoch = S.epoch;
    if (!S.token) return;
    try {
      const refreshed = await api('POST', `${BASE}/tokens/refresh`, { token: S.token });
      if (epoch !== S.epoch) return;
      if (typeof refreshed.token === 'string' && refreshed.token) S.token = refreshed.token;
      setExpiry(refreshed.expires_in);
      saveSession();
      scheduleRefresh();
    } catch (err) {
      if (epoch !== S.epoch) return;
      if (err.status === 401 || err.status === 403 || err.status === 404) {
        // The token can no longer be renewed: let the reconnect path decide what is left.
        S.ready = false;
        scheduleConnect(0);
        return;
      }
      clearTimeout(refreshTimer);
      const left = S.expiresAt - Date.now();
      refreshTimer = setTimeout(refreshToken, Math.max(5000, Math.min(30000, left / 2)));
    }
  }

  // ---- persistence -----------------------------------------------------------------------

  function saveSession() {
    if (!S.conversationId) return;
    store.set(SESSION_KEY, {
      conversationId: S.conversationId,
      token: S.token,
      watermark: S.watermark,
      expiresAt: S.expiresAt,
      refreshAt: S.refreshAt,
      userId: S.userId,
    });
  }

  function loadSession() {
    const saved = store.get(SESSION_KEY);
    if (!saved || typeof saved.conversationId !== 'string' || typeof saved.token !== 'string') return false;
    S.conversationId = saved.conversationId;
    S.token = saved.token;
    S.watermark = typeof saved.watermark === 'string' ? saved.watermark : null;
    S.renderedWatermark = null; // a reloaded page re-renders the whole transcript
    S.expiresAt = Number(saved.expiresAt) || 0;
    S.refreshAt = Number(saved.refreshAt) || 0;
    if (typeof saved.userId === 'string') S.userId = saved.userId;
    return true;
  }

  function persistOutbox() {
    const pending = [];
    for (const entry of outbox.values()) {
      if (entry.status === 'sending' || entry.status === 'failed') {
        pending.push({ clientId: entry.clientId, text: entry.text, at: entry.at, status: entry.status, error: entry.error });
      }
    }
    if (pending.length) store.set(OUTBOX_KEY, pending);
    else store.remove(OUTBOX_KEY);
  }

  // ---- the visitor -----------------------------------------------------------------------

  function field(id) {
    const el = document.getElementById(id);
    return el && 'value' in el ? el : null;
  }

  /** The visitor as last applied (page load or the demo form's Update), not as being typed. */
  let applied = null;

  function readVisitor() {
    const saved = store.get(VISITOR_KEY) || {};
    const pick = (key) => {
      const el = field(`visitor-${key}`);
      const value = el ? el.value : typeof saved[key] === 'string' ? saved[key] : DEFAULT_VISITOR[key];
      return String(value || '').trim().slice(0, 200);
    };
    return { name: pick('name'), email: pick('email'), company: pick('company') };
  }

  function visitor() {
    if (!applied) applied = readVisitor();
    return applied;
  }

  function visitorContext() {
    const v = visitor();
    let timezone = '';
    try {
      timezone = Intl.DateTimeFormat().resolvedOptions().timeZone || '';
    } catch {
      timezone = '';
    }
    return {
      name: v.name,
      email: v.email,
      company: v.company,
      page: { url: window.location.href, title: document.title, referrer: document.referrer },
      locale: navigator.language,
      timezone,
      userAgent: navigator.userAgent,
      screen: { width: window.screen.width, height: window.screen.height },
    };
  }

  function from() {
    return { id: S.userId, name: visitor().name || 'Visitor' };
  }

  // ---- posting ---------------------------------------------------------------------------

  async function postActivity(activity) {
    await waitReady();
    const body = {
      ...activity,
      from: from(),
      locale: navigator.language,
      channelData: { clientActivityID: activity.clientActivityID || randomId() },
    };
    delete body.clientActivityID;
    try {
      return await api('POST', `${BASE}/conversations/${enc(S.conversationId)}/activities`, {
        token: S.token,
        body,
      });
    } catch (err) {
      if (err.status === 403 || err.status === 404) {
        // Probably an expired token or a forgotten conversation: re-check it now.
        S.ready = false;
        scheduleConnect(0);
      }
      throw err;
    }
  }

  async function postEvent(name, value, { attempts = 1 } = {}) {
    const clientActivityID = randomId(); // the same id on every attempt: the server dedupes
    for (let attempt = 1; ; attempt += 1) {
      try {
        const activity = { type: 'event', name, clientActivityID };
        if (value !== undefined) activity.value = value;
        return await postActivity(activity);
      } catch (err) {
        const retriable = err.status === 0 || err.status >= 500;
        if (!retriable || attempt >= attempts) throw err;
        await new Promise((r) => setTimeout(r, 1000 * 2 ** (attempt - 1)));
      }
    }
  }

  async function sendContext(epoch) {
    try {
      await postEvent('visitor.context', visitorContext(), { attempts: 3 });
    } catch (err) {
      if (epoch === S.epoch) S.contextSent = false; // try again on the next connection
      throw err;
    }
  }

  let sendChain = Promise.resolve();

  function enqueue(entry) {
    entry.status = 'sending';
    entry.error = '';
    renderEntryStatus(entry);
    persistOutbox();
    sendChain = sendChain.then(() => deliver(entry));
  }

  // Asked to wait (429: too fast, 503: the service is briefly unable to keep messages): the
  // message waits as long as the server says and goes again, in order (later ones wait behind
  // it), a few times before it counts as not sent.
  const WAIT_RETRIES = 6;

  async function deliver(entry) {
    const current = () => outbox.get(entry.clientId) === entry && entry.status === 'sending';
    if (!current()) return;
    try {
      await waitReady();
      if (!current()) return; // "New conversation" discarded it meanwhile
      let result;
      for (let attempt = 1; ; attempt += 1) {
        try {
          result = await postActivity({
            type: 'message',
            text: entry.text,
            textFormat: 'plain',
            clientActivityID: entry.clientId,
            ...(entry.value === undefined ? {} : { value: entry.value }),
          });
          break;
        } catch (err) {
          const asked = (err.status === 429 || err.status === 503) && err.retryAfter > 0;
          if (!asked || attempt >= WAIT_RETRIES || !current()) throw err;
          entry.el.querySelector('.msg-status').replaceChildren(h('span', { text: err.message }));
          await new Promise((r) => setTimeout(r, Math.min(60, err.retryAfter) * 1000));
          if (!current()) return;
          renderEntryStatus(entry);
        }
      }
      if (!current()) return;
      if (typeof result.id === 'string' && result.id) {
        entry.el.dataset.id = result.id;
        seen.set(result.id, entry.el);
      }
      // Stored by the server (a reload replays it); the echo on the stream marks it delivered.
      entry.status = 'sent';
      renderEntryStatus(entry);
      persistOutbox();
    } catch (err) {
      if (!current()) return;
      entry.status = 'failed';
      entry.error = err.status >= 400 && err.status < 500 ? err.message : '';
      renderEntryStatus(entry);
      persistOutbox();
    }
  }

  function retry(entry) {
    if (entry.status !== 'failed') return;
    // Back into the "still sending" tail, with the same clientActivityID.
    entry.el.remove();
    ui.log.append(entry.el);
    enqueue(entry);
    afterAppend(true);
  }

  function sendMessage(text, value) {
    clearChoices();
    const entry = {
      clientId: randomId(),
      text,
      value,
      at: new Date().toISOString(),
      status: 'sending',
      error: '',
      el: null,
    };
    entry.el = messageElement({ role: 'user', name: 'You', text, timestamp: entry.at });
    entry.el.dataset.clientId = entry.clientId;
    outbox.set(entry.clientId, entry);
    ui.log.append(entry.el);
    afterAppend(true);
    enqueue(entry);
  }

  function restoreOutbox() {
    const saved = store.get(OUTBOX_KEY);
    if (!Array.isArray(saved)) return;
    for (const item of saved) {
      if (!item || typeof item.clientId !== 'string' || typeof item.text !== 'string') continue;
      const entry = {
        clientId: item.clientId,
        text: item.text,
        at: typeof item.at === 'string' ? item.at : new Date().toISOString(),
        status: item.status === 'failed' ? 'failed' : 'sending',
        error: typeof item.error === 'string' ? item.error : '',
        el: null,
      };
      entry.el = messageElement({ role: 'user', name: 'You', text: entry.text, timestamp: entry.at });
      entry.el.dataset.clientId = entry.clientId;
      outbox.set(entry.clientId, entry);
      ui.log.append(entry.el);
      if (entry.status === 'sending') enqueue(entry);
      else renderEntryStatus(entry);
    }
    afterAppend(true);
  }

  // ---- composer and buttons --------------------------------------------------------------

  let lastTypingSent = 0;

  function onInputKeyDown(event) {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      submit();
    }
  }

  function onInput() {
    autoGrow();
    const length = ui.input.value.length;
    ui.send.disabled = !ui.input.value.trim();
    ui.counter.textContent = length > MAX_CHARS - 500 ? `${length} / ${MAX_CHARS}` : '';
    const now = Date.now();
    if (ui.input.value.trim() && S.ready && now - lastTypingSent > TYPING_SEND_MS) {
      lastTypingSent = now;
      postActivity({ type: 'typing' }).catch(() => {});
    }
  }

  function autoGrow() {
    ui.input.style.height = 'auto';
    ui.input.style.height = `${Math.min(ui.input.scrollHeight, 140)}px`;
  }

  function onSubmit(event) {
    event.preventDefault();
    submit();
  }

  function submit() {
    const text = ui.input.value.replace(/^\s*\n|\s+$/g, '');
    if (!text.trim()) return;
    sendMessage(text.slice(0, MAX_CHARS));
    ui.input.value = '';
    onInput();
    ui.input.focus();
  }

  async function onTalkToPerson() {
    ui.talk.disabled = true;
    try {
      await postEvent('handoff.request', {});
    } catch (err) {
      notice(`Could not ask for a specialist: ${err.message}`, 'error');
    } finally {
      ui.talk.disabled = false;
    }
  }

  async function onEndChat() {
    ui.end.disabled = true;
    try {
      await postEvent('handoff.end');
    } catch (err) {
      notice(`Could not end the chat: ${err.message}`, 'error');
    } finally {
      ui.end.disabled = false;
    }
  }

  function newConversation() {
    if (S.ready && S.handoff !== 'bot') {
      // Let the specialist know the visitor left; best effort.
      const id = S.conversationId;
      const token = S.token;
      api('POST', `${BASE}/conversations/${enc(id)}/activities`, {
        token,
        body: { type: 'event', name: 'handoff.end', from: from(), channelData: { clientActivityID: randomId() } },
      }).catch(() => {});
    }
    dropConversation();
    store.remove(OUTBOX_KEY);
    outbox.clear();
    seen.clear();
    ui.log.replaceChildren();
    failures = 0;
    setBanner(null);
    afterAppend(true);
    scheduleConnect(0);
    ui.input.focus();
  }

  // ---- the demo page's visitor form ------------------------------------------------------

  function bindVisitorForm() {
    const form = document.getElementById('demo-visitor');
    if (!form) return;
    const saved = store.get(VISITOR_KEY);
    if (saved && typeof saved === 'object') {
      for (const key of ['name', 'email', 'company']) {
        const el = field(`visitor-${key}`);
        if (el && typeof saved[key] === 'string') el.value = saved[key];
      }
    }
    const status = document.getElementById('visitor-status');
    let statusTimer = 0;
    const say = (text) => {
      if (!status) return;
      status.textContent = text;
      clearTimeout(statusTimer);
      statusTimer = setTimeout(() => {
        status.textContent = '';
      }, 4000);
    };
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      applied = readVisitor();
      store.set(VISITOR_KEY, applied);
      if (!S.ready) {
        say('Saved — sent when the chat starts.');
        return;
      }
      say('Sending…');
      try {
        await sendContext(S.epoch);
        S.contextSent = true;
        say('Visitor context sent ✓');
      } catch (err) {
        say(`Not sent: ${err.message}`);
      }
    });
  }

  // ---- public surface --------------------------------------------------------------------

  window.handoffWidget = {
    get conversationId() {
      return S.conversationId;
    },
    get state() {
      return S.handoff;
    },
    get connected() {
      return Boolean(socket && socket.readyState === WebSocket.OPEN);
    },
    open: () => openPanel(),
    close: () => closePanel(),
    newConversation: () => newConversation(),
  };

  // ---- start -----------------------------------------------------------------------------

  function start() {
    build();
    bindVisitorForm();
    S.userId = `dl_${randomId().replace(/-/g, '').slice(0, 16)}`;
    const resumed = loadSession();
    restoreOutbox();
    afterAppend(true);

    document.addEventListener('click', (event) => {
      const trigger = event.target instanceof Element ? event.target.closest('[data-open-chat]') : null;
      if (trigger) {
        event.preventDefault();
        openPanel();
      }
    });
    window.addEventListener('online', () => {
      if (!socket) {
        failures = 0;
        scheduleConnect(0);
      }
    });
    window.addEventListener('focus', wake);
    document.addEventListener('pointerdown', wake);
    document.addEventListener('keydown', wake);
    document.addEventListener('visibilitychange', () => {
      if (document.visibilityState !== 'visible' || !S.token) return;
      wake();
      if (S.refreshAt && Date.now() >= S.refreshAt) refreshToken();
      if (socket && Date.now() - lastFrameAt > STALE_MS) {
        closeSocket();
        onSocketLost();
      }
    });
    window.addEventListener('pagehide', () => {
      unloading = true;
    });
    window.addEventListener('pageshow', (event) => {
      unloading = false;
      if (event.persisted && S.conversationId && !socket) scheduleConnect(0); // back/forward cache
    });

    const uiState = store.get(UI_KEY);
    if (uiState && uiState.open) openPanel({ focus: false });
    // Resume a stored conversation right away (so a minimised chat still gets messages);
    // otherwise wait until the visitor opens the panel.
    if (resumed || outbox.size) scheduleConnect(0);
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
