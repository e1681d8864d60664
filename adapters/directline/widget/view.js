/*
 * The widget on screen: launcher, panel, transcript, composer. It renders what it is told and
 * reports what the visitor does through the handlers it was given; it never talks to the
 * service itself.
 *
 * handlers: onLauncher(), onMinimise(), onRetryConnection(), onSend(text), onTyping(),
 * onTalkToPerson() -> Promise, onEndChat() -> Promise, onNewConversation(), onRetryMessage(clientId),
 * onChoice(choice).
 */

import { h, icon } from './dom.js';
import {
  amend,
  choicesElement,
  markDelivered,
  messageElement,
  notice,
  setTime,
  showStatus,
} from './messages.js';

export const MAX_CHARS = 4000;
const TYPING_SHOW_MS = 3000;
const COMPOSER_MAX_PX = 140;

const STATUS_TEXT = {
  bot: 'Virtual assistant',
  queued: 'Connecting you to a specialist…',
  accepted: "You're chatting with a specialist",
};

export class ChatView {
  #handlers;
  #ui = {};
  #open = false;
  #unread = 0;
  #stick = true; // keep the transcript scrolled to the end
  #typingTimer = 0;
  #own = new Map(); // clientActivityID -> the visitor's message element, until delivered

  /** Build the widget into container (a shadow root); handlers receive what the visitor does. */
  constructor(container, handlers) {
    this.#handlers = handlers;
    this.#build(container);
  }

  // ---- panel -------------------------------------------------------------------------------

  get root() {
    return this.#ui.root;
  }

  setOpen(open, { focus = true } = {}) {
    const ui = this.#ui;
    this.#open = open;
    ui.panel.hidden = !open;
    ui.root.classList.toggle('cw--open', open);
    ui.launcher.setAttribute('aria-expanded', String(open));
    ui.launcherIcon.replaceChildren(icon(open ? 'chevronDown' : 'chat', 26));
    this.#labelLauncher();
    if (open) {
      this.#scrollToBottom();
      if (focus) ui.input.focus({ preventScroll: true });
    } else {
      ui.launcher.focus({ preventScroll: true });
    }
  }

  setUnread(count) {
    this.#unread = count;
    this.#ui.badge.hidden = count === 0;
    this.#ui.badge.textContent = count > 9 ? '9+' : String(count);
    this.#labelLauncher();
  }

  #labelLauncher() {
    const n = this.#unread;
    this.#ui.launcher.setAttribute(
      'aria-label',
      this.#open ? 'Close chat' : n ? `Open chat, ${n} new message${n > 1 ? 's' : ''}` : 'Open chat',
    );
  }

  /** A connection problem ("Reconnecting…"), or null to hide it. */
  setBanner(text) {
    if (!text) {
      this.#ui.banner.hidden = true;
      return;
    }
    this.#ui.bannerText.textContent = text;
    this.#ui.banner.hidden = false;
  }

  /** bot | queued | accepted: the header's status, and which of talk / end is offered. */
  setHandoff(state) {
    const ui = this.#ui;
    ui.panel.dataset.state = state;
    ui.statusText.textContent = STATUS_TEXT[state];
    ui.talk.hidden = state !== 'bot';
    ui.end.hidden = state === 'bot';
    ui.talk.disabled = false;
    ui.end.disabled = false;
  }

  showTyping(name) {
    const ui = this.#ui;
    ui.typingText.textContent = `${name || 'Someone'} is typing…`;
    const wasAtBottom = this.#nearBottom();
    ui.typing.hidden = false;
    if (wasAtBottom) this.#scrollToBottom();
    clearTimeout(this.#typingTimer);
    this.#typingTimer = setTimeout(() => this.hideTyping(), TYPING_SHOW_MS);
  }

  hideTyping() {
    clearTimeout(this.#typingTimer);
    this.#ui.typing.hidden = true;
  }

  focusInput() {
    this.#ui.input.focus();
  }

  // ---- transcript --------------------------------------------------------------------------

  hasMessages() {
    return this.#ui.log.querySelector('.msg') !== null;
  }

  notice(text, kind = 'info') {
    this.#insert(notice(text, kind));
  }

  /**
   * A message from the conversation ({role, name, text, timestamp, id, choices}); the visitor's
   * own (from another tab, or replayed) shows as delivered. False when there was no text to show.
   */
  addMessage({ role, name, text, timestamp, id, choices = [] }) {
    if (!text.trim()) return false;
    const node = messageElement({ role, name, text, timestamp: timestamp || '', id });
    if (role === 'user') markDelivered(node);
    this.#insert(node, { force: role === 'user' });
    if (choices.length) {
      this.clearChoices();
      node.after(choicesElement(choices, (choice) => this.#handlers.onChoice(choice)));
      this.#afterAppend();
    }
    return true;
  }

  /** A message the visitor just wrote (or one a previous page left unsent): at the tail. */
  addOwnMessage(entry) {
    const node = messageElement({ role: 'user', name: 'You', text: entry.text, timestamp: entry.at });
    node.dataset.clientId = entry.clientId;
    this.#own.set(entry.clientId, node);
    this.#ui.log.append(node);
    this.#afterAppend(true);
  }

  showEntry(entry) {
    const node = this.#own.get(entry.clientId);
    if (node) showStatus(node, entry, () => this.#handlers.onRetryMessage(entry.clientId));
  }

  /** A failed message goes again: back into the "still sending" tail. */
  moveToTail(entry) {
    const node = this.#own.get(entry.clientId);
    if (!node) return;
    node.remove();
    this.#ui.log.append(node);
    this.#afterAppend(true);
  }

  /** The stream echoed the visitor's message: it takes its place in the conversation. */
  delivered(entry, { wasPending, timestamp }) {
    const node = this.#own.get(entry.clientId);
    if (!node) return;
    this.#own.delete(entry.clientId);
    if (entry.id) node.dataset.id = entry.id;
    if (typeof timestamp === 'string') setTime(node, timestamp);
    if (wasPending) {
      // Out of the "still sending" tail, to where the conversation is now.
      node.remove();
      node.dataset.status = 'delivered';
      this.#insert(node);
    }
    showStatus(node, entry);
  }

  /** A specialist edited or deleted a message shown earlier ({targetId, deleted, text}). */
  amend({ targetId, deleted, text }) {
    const node = targetId ? this.#ui.log.querySelector(`.msg[data-id="${CSS.escape(targetId)}"]`) : null;
    if (node) amend(node, { deleted, text });
  }

  clearChoices() {
    for (const node of this.#ui.log.querySelectorAll('.msg-choices')) node.remove();
  }

  /** Empty the transcript (a new conversation). */
  clear() {
    this.#own.clear();
    this.#ui.log.replaceChildren();
    this.#afterAppend(true);
  }

  // ---- scrolling ---------------------------------------------------------------------------

  #nearBottom() {
    const el = this.#ui.scroll;
    return el.scrollHeight - el.scrollTop - el.clientHeight < 48;
  }

  #scrollToBottom() {
    this.#ui.scroll.scrollTop = this.#ui.scroll.scrollHeight;
    this.#stick = true;
  }

  #afterAppend(force = false) {
    this.#ui.empty.hidden = this.#ui.log.childElementCount > 0;
    if (force || this.#stick) this.#scrollToBottom();
  }

  /** Where a new transcript item goes: before the visitor's messages that are still sending. */
  #insert(node, { force = false } = {}) {
    const log = this.#ui.log;
    const firstSending = log.querySelector('.msg[data-status="sending"]');
    if (firstSending && firstSending !== node) log.insertBefore(node, firstSending);
    else log.append(node);
    this.#afterAppend(force);
  }

  // ---- the composer ------------------------------------------------------------------------

  #onInputKeyDown(event) {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      this.#submit();
    }
  }

  #onInput() {
    const ui = this.#ui;
    ui.input.style.height = 'auto';
    ui.input.style.height = `${Math.min(ui.input.scrollHeight, COMPOSER_MAX_PX)}px`;
    const length = ui.input.value.length;
    ui.send.disabled = !ui.input.value.trim();
    ui.counter.textContent = length > MAX_CHARS - 500 ? `${length} / ${MAX_CHARS}` : '';
    if (ui.input.value.trim()) this.#handlers.onTyping();
  }

  #submit() {
    const ui = this.#ui;
    const text = ui.input.value.replace(/^\s*\n|\s+$/g, '');
    if (!text.trim()) return;
    this.#handlers.onSend(text.slice(0, MAX_CHARS));
    ui.input.value = '';
    this.#onInput();
    ui.input.focus();
  }

  /** Disable the button until the handler's promise settles. */
  async #busy(button, handler) {
    button.disabled = true;
    try {
      await handler();
    } finally {
      button.disabled = false;
    }
  }

  // ---- building ----------------------------------------------------------------------------

  #build(container) {
    const ui = this.#ui;
    const on = this.#handlers;
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
        onClick: () => on.onLauncher(),
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
      h('span', { className: 'cw-dots', 'aria-hidden': 'true' }, h('i'), h('i'), h('i')),
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
      h(
        'button',
        {
          type: 'button',
          id: 'chat-close',
          className: 'cw-icon-btn',
          'aria-label': 'Minimise chat',
          title: 'Minimise',
          onClick: () => on.onMinimise(),
        },
        icon('chevronDown', 22),
      ),
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
        onClick: () => on.onRetryConnection(),
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
      this.#stick = this.#nearBottom();
    });

    ui.talk = h(
      'button',
      {
        type: 'button',
        id: 'talk-to-person',
        className: 'cw-chip',
        onClick: () => this.#busy(ui.talk, on.onTalkToPerson),
      },
      icon('person', 16),
      h('span', { text: 'Talk to a person' }),
    );
    ui.end = h(
      'button',
      {
        type: 'button',
        id: 'end-chat',
        className: 'cw-chip cw-chip--danger',
        hidden: true,
        onClick: () => this.#busy(ui.end, on.onEndChat),
      },
      icon('end', 16),
      h('span', { text: 'End chat' }),
    );
    const actions = h(
      'div',
      { className: 'cw-actions' },
      ui.talk,
      ui.end,
      h('span', { className: 'cw-spacer' }),
      h('button', {
        type: 'button',
        id: 'new-conversation',
        className: 'cw-link',
        text: 'New conversation',
        onClick: () => on.onNewConversation(),
      }),
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
    ui.input.addEventListener('keydown', (event) => this.#onInputKeyDown(event));
    ui.input.addEventListener('input', () => this.#onInput());
    ui.send = h(
      'button',
      { type: 'submit', id: 'chat-send', className: 'cw-send', 'aria-label': 'Send message', disabled: true },
      icon('send', 20),
    );
    ui.counter = h('span', { className: 'cw-counter' });
    const form = h(
      'form',
      {
        className: 'cw-composer',
        onSubmit: (event) => {
          event.preventDefault();
          this.#submit();
        },
      },
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
      form,
      footer,
    );
    ui.panel.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') {
        event.stopPropagation();
        on.onMinimise();
      }
    });

    ui.root = h('div', { id: 'chat-root', className: 'cw' }, ui.panel, ui.launcher);
    container.append(ui.root);
  }
}
