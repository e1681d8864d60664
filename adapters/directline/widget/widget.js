/*
 * Contoso chat widget: a dependency-free Direct Line 3.0 client for the human-handoff bot.
 *
 * Embed with one tag (an ES module; the files sit side by side in one folder, no build step):
 *   <script type="module" src="/widget/widget.js"></script>
 * It talks to the Direct Line service of the origin it was loaded from. A site that serves a copy
 * of these files names the service on that tag: data-domain="https://BOT/v3/directline".
 * (Loading the files from the bot into another origin's page needs CORS on them: browsers fetch
 * module scripts in CORS mode.) The page tells the widget who the visitor is with
 * handoffWidget.setVisitor({name, email, company}); see demo.js.
 *
 * This file is the wiring: it mounts the view in a shadow root (the host page's CSS cannot reach
 * in, and the widget's cannot leak out), feeds the client's events to the view, and turns the
 * view's handlers into client calls. The parts:
 *   client.js     Direct Line protocol: conversation, socket, reconnects, tokens, posting
 *   outbox.js     the visitor's unsent messages: in order, Retry-After waits, retry
 *   state.js      what is remembered: session storage, the conversation, the view's state
 *   activities.js reading what arrives on the stream
 *   view.js       the panel on screen; messages.js, text.js, dom.js build its parts
 */

import { isFresh, readActivity } from './activities.js';
import { DirectLineClient } from './client.js';
import { Outbox } from './outbox.js';
import { createViewState, panelMemory, Session } from './state.js';
import { ChatView, MAX_CHARS } from './view.js';

const TYPING_MAX_AGE_MS = 15000; // ignore replayed typing activities older than this
const HOST_TAG = 'contoso-chat'; // a custom element: no host rule for div, section... matches it
const pageLoadedAt = Date.now();

/** Rules that must hold before widget.css has loaded: the host ignores the page's CSS. */
const HOST_CSS = `
:host { all: initial !important; display: block !important; }
.cw[data-loading] { visibility: hidden !important; }
`;

// ---- configuration ---------------------------------------------------------------------------

function ownScript() {
  for (const script of document.querySelectorAll('script[src]')) {
    if (script.src === import.meta.url) return script;
  }
  return null;
}

function readConfig() {
  const script = ownScript();
  const domain = (script && script.dataset.domain) || new URL('/v3/directline', import.meta.url).href;
  return { domain };
}

// ---- the visitor -----------------------------------------------------------------------------

/** The visitor as the host page last described them (handoffWidget.setVisitor). */
let visitor = { name: '', email: '', company: '' };

function cleanVisitor(value) {
  const pick = (key) => String((value && value[key]) || '').trim().slice(0, 200);
  return { name: pick('name'), email: pick('email'), company: pick('company') };
}

function visitorContext() {
  let timezone = '';
  try {
    timezone = Intl.DateTimeFormat().resolvedOptions().timeZone || '';
  } catch {
    timezone = '';
  }
  return {
    ...visitor,
    page: { url: window.location.href, title: document.title, referrer: document.referrer },
    locale: navigator.language,
    timezone,
    userAgent: navigator.userAgent,
    screen: { width: window.screen.width, height: window.screen.height },
  };
}

// ---- the parts -------------------------------------------------------------------------------

const config = readConfig();
const state = createViewState();
const session = new Session();
const client = new DirectLineClient({
  domain: config.domain,
  session,
  visitorName: () => visitor.name,
});
const outbox = new Outbox(client);
let view = null; // built when the page is ready

async function sendContext(epoch) {
  try {
    await client.postEvent('visitor.context', visitorContext(), { attempts: 3 });
  } catch (err) {
    if (epoch === client.epoch) state.contextSent = false; // try again on the next connection
    throw err;
  }
}

// ---- what the visitor does (the view's handlers) -------------------------------------------

function openPanel({ focus = true } = {}) {
  state.open = true;
  state.unread = 0;
  view.setOpen(true, { focus });
  view.setUnread(0);
  panelMemory.remember(true);
  client.ensureConnected();
}

function closePanel() {
  state.open = false;
  view.setOpen(false);
  panelMemory.remember(false);
}

function sendMessage(text, value) {
  view.clearChoices();
  outbox.add(text, value);
}

function newConversation() {
  if (client.ready && state.handoff !== 'bot') {
    client.postNow({ type: 'event', name: 'handoff.end' }); // let the specialist know; best effort
  }
  client.newConversation();
  outbox.clear();
  state.seen.clear();
  view.clear();
  view.focusInput();
}

const handlers = {
  onLauncher: () => (state.open ? closePanel() : openPanel()),
  onMinimise: () => closePanel(),
  onRetryConnection: () => client.retryNow(),
  onSend: (text) => sendMessage(text),
  onTyping: () => client.typing(),
  onTalkToPerson: async () => {
    try {
      await client.postEvent('handoff.request', {});
    } catch (err) {
      view.notice(`Could not ask for a specialist: ${err.message}`, 'error');
    }
  },
  onEndChat: async () => {
    try {
      await client.postEvent('handoff.end');
    } catch (err) {
      view.notice(`Could not end the chat: ${err.message}`, 'error');
    }
  },
  onNewConversation: () => newConversation(),
  onRetryMessage: (clientId) => outbox.retry(clientId),
  onChoice: (choice) => sendMessage(choice.text.slice(0, MAX_CHARS), choice.value),
};

// ---- what the conversation does (the client's and outbox's events) -------------------------

function setHandoff(raw) {
  state.handoff = raw === 'queued' || raw === 'accepted' ? raw : 'bot';
  view.setHandoff(state.handoff);
}

function onActivity({ activity, lastInFrame, replayFrame }) {
  const a = readActivity(activity);
  if (!a) return;
  const fromVisitor = a.role === 'user';
  // Our own message's echo: it confirms delivery even when the POST's answer came first.
  if (a.type === 'message' && fromVisitor && a.clientId && outbox.has(a.clientId)) {
    outbox.confirm(a.clientId, a.id, a.timestamp);
    return;
  }
  if (a.id && state.seen.has(a.id)) return;
  if (a.id) state.seen.add(a.id);

  if (a.type === 'message') {
    if (fromVisitor) {
      view.clearChoices();
      view.addMessage({ ...a, choices: [] });
      return;
    }
    view.hideTyping();
    const shown = view.addMessage(a);
    if (shown && !state.open && isFresh(a.timestamp, { since: pageLoadedAt })) {
      state.unread += 1;
      view.setUnread(state.unread);
    }
    return;
  }
  if (fromVisitor) return;
  if (a.event === 'handoff.status') {
    setHandoff(a.value.state);
  } else if (a.type === 'messageUpdate' || a.type === 'messageDelete') {
    view.amend({ targetId: a.replyToId, deleted: a.type === 'messageDelete', text: a.text });
  } else if (a.type === 'typing' && lastInFrame) {
    if (replayFrame && !isFresh(a.timestamp, { maxAgeMs: TYPING_MAX_AGE_MS })) return;
    view.showTyping(a.name);
  }
}

const BANNERS = { open: null, idle: null, reconnecting: 'Reconnecting…', offline: 'Reconnecting… (offline)' };

function listen() {
  client.addEventListener('activity', (event) => {
    try {
      onActivity(event.detail);
    } catch (err) {
      console.error('chat widget: could not show an activity', err);
    }
  });
  client.addEventListener('connection', (event) => view.setBanner(BANNERS[event.detail.state]));
  client.addEventListener('ready', (event) => {
    if (state.contextSent) return;
    state.contextSent = true;
    sendContext(event.detail.epoch).catch(() => {});
  });
  client.addEventListener('reset', () => {
    state.contextSent = false;
    setHandoff('bot');
    view.hideTyping();
  });
  client.addEventListener('lost', (event) => {
    if (view.hasMessages()) view.notice(`${event.detail.message} A new conversation has started.`);
  });

  outbox.addEventListener('add', (event) => view.addOwnMessage(event.detail.entry));
  outbox.addEventListener('change', (event) => {
    const { entry } = event.detail;
    if (entry.id) state.seen.add(entry.id);
    view.showEntry(entry);
  });
  outbox.addEventListener('retry', (event) => view.moveToTail(event.detail.entry));
  outbox.addEventListener('delivered', (event) => {
    const { entry } = event.detail;
    if (entry.id) state.seen.add(entry.id);
    view.delivered(entry, event.detail);
  });
}

// ---- the page --------------------------------------------------------------------------------

/** The widget's own element: a shadow root holding the view and its stylesheet. */
function mountHost() {
  const host = document.createElement(HOST_TAG);
  const shadow = host.attachShadow({ mode: 'open' });
  if ('adoptedStyleSheets' in shadow && typeof CSSStyleSheet === 'function' && 'replaceSync' in CSSStyleSheet.prototype) {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(HOST_CSS);
    shadow.adoptedStyleSheets = [sheet]; // not subject to the page's CSP for inline styles
  } else {
    const style = document.createElement('style');
    style.textContent = HOST_CSS;
    shadow.append(style);
  }
  const link = document.createElement('link');
  link.rel = 'stylesheet';
  link.href = new URL('widget.css', import.meta.url).href;
  shadow.append(link);
  document.body.append(host);
  return { shadow, link };
}

function listenToPage() {
  document.addEventListener('click', (event) => {
    const trigger = event.target instanceof Element ? event.target.closest('[data-open-chat]') : null;
    if (trigger) {
      event.preventDefault();
      openPanel();
    }
  });
  const wake = () => client.wake();
  window.addEventListener('online', () => client.networkBack());
  window.addEventListener('focus', wake);
  document.addEventListener('pointerdown', wake);
  document.addEventListener('keydown', wake);
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') client.revisit();
  });
  window.addEventListener('pagehide', () => client.pageHidden());
  window.addEventListener('pageshow', (event) => client.pageShown(event.persisted));
}

function start() {
  const { shadow, link } = mountHost();
  view = new ChatView(shadow, handlers);
  view.root.dataset.loading = '';
  const shown = () => delete view.root.dataset.loading;
  link.addEventListener('load', shown, { once: true });
  link.addEventListener('error', shown, { once: true }); // unstyled beats invisible
  listen();
  const resumed = session.load();
  outbox.restore();
  listenToPage();
  if (panelMemory.wasOpen()) openPanel({ focus: false });
  // Resume a stored conversation right away (so a minimised chat still gets messages);
  // otherwise wait until the visitor opens the panel.
  if (resumed || outbox.size) client.start();
}

/** Start once the page's other deferred scripts ran (they may describe the visitor first). */
function whenParsed(run) {
  let done = false;
  const once = () => {
    if (done) return;
    done = true;
    run();
  };
  const [navigation] = performance.getEntriesByType ? performance.getEntriesByType('navigation') : [];
  if (document.readyState === 'complete' || (navigation && navigation.domContentLoadedEventEnd > 0)) {
    once();
    return;
  }
  document.addEventListener('DOMContentLoaded', once, { once: true });
  window.addEventListener('load', once, { once: true });
}

// ---- public surface --------------------------------------------------------------------------

export const handoffWidget = {
  get conversationId() {
    return client.conversationId;
  },
  get state() {
    return state.handoff;
  },
  get connected() {
    return client.connected;
  },
  open: () => view && openPanel(),
  close: () => view && closePanel(),
  newConversation: () => view && newConversation(),
  /**
   * Who the visitor is ({name, email, company}); sent as visitor.context now if the chat is
   * connected (resolves 'sent'), else when it connects (resolves 'saved').
   */
  async setVisitor(value) {
    visitor = cleanVisitor(value);
    if (!client.ready) return 'saved';
    await sendContext(client.epoch);
    state.contextSent = true;
    return 'sent';
  },
};

window.handoffWidget = handoffWidget;
whenParsed(start);
