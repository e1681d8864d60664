/*
 * One transcript item on screen: a message bubble (visitor, bot or specialist), its delivery
 * status, a specialist's edit or deletion, and the choices under a bot message.
 * Text goes through text.renderText only.
 */

import { h, icon } from './dom.js';
import { hhmm, initials, renderText } from './text.js';

export function messageElement({ role, name, text, timestamp, id }) {
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
  const body = h(
    'div',
    { className: 'msg-body' },
    head,
    h('div', { className: 'msg-bubble' }, textEl),
    h('div', { className: 'msg-meta' }, time, h('span', { className: 'msg-status' })),
  );
  const node = h('div', { className: `msg msg--${role}`, dataset: { role } }, avatar, body);
  if (id) node.dataset.id = id;
  return node;
}

export function setTime(node, timestamp) {
  const time = node.querySelector('.msg-time');
  time.textContent = hhmm(timestamp);
  time.setAttribute('datetime', timestamp);
}

export function markDelivered(node) {
  node.dataset.status = 'delivered';
  const status = node.querySelector('.msg-status');
  status.removeAttribute('title');
  status.replaceChildren(icon('check', 14), h('span', { className: 'cw-sr-only', text: 'Delivered' }));
  status.title = 'Delivered';
}

/** The visitor's own message: sending (or what the service asked to wait for), sent, delivered, failed. */
export function showStatus(node, entry, onRetry) {
  node.dataset.status = entry.status;
  if (entry.id) node.dataset.id = entry.id;
  const status = node.querySelector('.msg-status');
  status.removeAttribute('title');
  if (entry.status === 'sending') {
    status.replaceChildren(h('span', { text: entry.note || 'Sending…' }));
  } else if (entry.status === 'sent') {
    status.replaceChildren(h('span', { text: 'Sent' }));
  } else if (entry.status === 'delivered') {
    markDelivered(node);
  } else if (entry.status === 'failed') {
    const parts = [
      h('span', { className: 'msg-failed', text: 'Not sent — ' }),
      h(
        'button',
        {
          type: 'button',
          className: 'msg-retry',
          'aria-label': 'Retry sending this message',
          onClick: onRetry,
        },
        icon('retry', 12),
        h('span', { text: 'retry' }),
      ),
    ];
    if (entry.error) parts.push(h('span', { className: 'msg-error', text: entry.error }));
    status.replaceChildren(...parts);
  }
}

/** A specialist edited (Teams messageUpdate) or deleted (messageDelete) this message. */
export function amend(node, { deleted, text }) {
  const textEl = node.querySelector('.msg-text');
  if (deleted) {
    node.dataset.deleted = 'true';
    textEl.replaceChildren(h('em', { text: 'This message was deleted.' }));
    return;
  }
  textEl.replaceChildren(renderText(text));
  node.dataset.edited = 'true';
  const meta = node.querySelector('.msg-meta');
  if (meta && !meta.querySelector('.msg-edited')) {
    meta.prepend(h('span', { className: 'msg-edited', text: 'edited · ' }));
  }
}

/** Suggested actions as buttons (e.g. "which team can help?"); onChoice(choice) on a click. */
export function choicesElement(choices, onChoice) {
  const row = h('div', { className: 'msg-choices', role: 'group', 'aria-label': 'Choose an option' });
  for (const choice of choices) {
    row.append(
      h(
        'button',
        { type: 'button', className: 'msg-choice', onClick: () => onChoice(choice) },
        h('span', { text: choice.label }),
      ),
    );
  }
  return row;
}

export function notice(text, kind) {
  return h(
    'div',
    { className: `cw-notice cw-notice--${kind}` },
    kind === 'error' ? icon('alert', 14) : null,
    h('span', { text }),
  );
}
