/*
 * What the widget remembers. The conversation (id, token, watermark) and the panel's open state
 * live in sessionStorage, so a reload or the next page of the site resumes the same chat; what
 * the visitor sees (handoff state, unread count, activities already shown) lives for the page.
 */

const KEY_PREFIX = 'contosoChat.';
export const KEYS = {
  session: `${KEY_PREFIX}session.v1`, // {conversationId, token, watermark, ...}
  outbox: `${KEY_PREFIX}outbox.v1`, // visitor messages not yet acknowledged
  ui: `${KEY_PREFIX}ui.v1`, // {open}
};

/** JSON in sessionStorage; a full or disabled storage only costs the memory across pages. */
export const storage = {
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

export function randomId() {
  if (window.crypto && typeof window.crypto.randomUUID === 'function') {
    return window.crypto.randomUUID();
  }
  const bytes = new Uint8Array(16);
  window.crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The Direct Line conversation this page talks in, as stored across page loads. */
export class Session {
  constructor() {
    this.userId = `dl_${randomId().replace(/-/g, '').slice(0, 16)}`;
    this.#clear();
  }

  /** Take the stored conversation, if any; true when there was one. */
  load() {
    const saved = storage.get(KEYS.session);
    if (!saved || typeof saved.conversationId !== 'string' || typeof saved.token !== 'string') return false;
    this.conversationId = saved.conversationId;
    this.token = saved.token;
    this.watermark = typeof saved.watermark === 'string' ? saved.watermark : null;
    this.renderedWatermark = null; // a reloaded page re-renders the whole transcript
    this.expiresAt = Number(saved.expiresAt) || 0;
    this.refreshAt = Number(saved.refreshAt) || 0;
    if (typeof saved.userId === 'string') this.userId = saved.userId;
    return true;
  }

  save() {
    if (!this.conversationId) return;
    storage.set(KEYS.session, {
      conversationId: this.conversationId,
      token: this.token,
      watermark: this.watermark,
      expiresAt: this.expiresAt,
      refreshAt: this.refreshAt,
      userId: this.userId,
    });
  }

  /** No conversation any more (the visitor keeps their id for the next one). */
  forget() {
    this.#clear();
    storage.remove(KEYS.session);
  }

  #clear() {
    this.conversationId = null;
    this.token = null;
    this.expiresAt = 0;
    this.refreshAt = 0;
    this.watermark = null; // last watermark received (persisted)
    this.renderedWatermark = null; // what this page has rendered; null = replay from the start
  }
}

/** Whether the panel was open, so the next page shows it the same way. */
export const panelMemory = {
  wasOpen: () => Boolean((storage.get(KEYS.ui) || {}).open),
  remember: (open) => storage.set(KEYS.ui, { open }),
};

/** What the page shows: the handoff state, unread count, and ids of activities already handled. */
export function createViewState() {
  return {
    handoff: 'bot', // bot | queued | accepted
    open: false,
    unread: 0,
    seen: new Set(), // activity ids already shown or handled (a replay shows nothing twice)
    contextSent: false, // visitor.context sent for this conversation on this page
  };
}
