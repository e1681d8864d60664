/*
 * The visitor's messages until the stream echoes them: sent one after another, in order; kept in
 * sessionStorage while unacknowledged (a reload sends them again, under the same id, and the
 * service drops duplicates); waited out as long as a 429/503 Retry-After says; failed ones wait
 * for the visitor's "retry".
 *
 * An entry is {clientId, text, value, at, status, error, note, id}; status goes
 * sending -> sent (stored by the service) -> delivered (echoed), or sending -> failed.
 *
 * Events (CustomEvent, detail {entry}): add (a new message to show at the tail), change (its
 * status, note or id changed), retry (it goes again: back to the tail), delivered (echoed on the
 * stream; detail.wasPending when it was still sending or failed, so it moves into place).
 */

import { KEYS, randomId, storage } from './state.js';

// Asked to wait (429: too fast, 503: the service is briefly unable to keep messages): the
// message waits as long as the server says and goes again, in order (later ones wait behind
// it), a few times before it counts as not sent.
const WAIT_RETRIES = 6;
const MAX_WAIT_S = 60;

export class Outbox extends EventTarget {
  #client;
  #entries = new Map(); // clientActivityID -> entry
  #chain = Promise.resolve();

  constructor(client) {
    super();
    this.#client = client;
  }

  get size() {
    return this.#entries.size;
  }

  has(clientId) {
    return this.#entries.has(clientId);
  }

  /** A new message from the visitor. */
  add(text, value) {
    const entry = {
      clientId: randomId(),
      text,
      value,
      at: new Date().toISOString(),
      status: 'sending',
      error: '',
      note: '',
      id: '',
    };
    this.#entries.set(entry.clientId, entry);
    this.#emit('add', entry);
    this.#enqueue(entry);
    return entry;
  }

  /** The messages a previous page left unsent: shown again, and those still sending go again. */
  restore() {
    const saved = storage.get(KEYS.outbox);
    if (!Array.isArray(saved)) return;
    for (const item of saved) {
      if (!item || typeof item.clientId !== 'string' || typeof item.text !== 'string') continue;
      const entry = {
        clientId: item.clientId,
        text: item.text,
        value: undefined,
        at: typeof item.at === 'string' ? item.at : new Date().toISOString(),
        status: item.status === 'failed' ? 'failed' : 'sending',
        error: typeof item.error === 'string' ? item.error : '',
        note: '',
        id: '',
      };
      this.#entries.set(entry.clientId, entry);
      this.#emit('add', entry);
      if (entry.status === 'sending') this.#enqueue(entry);
      else this.#emit('change', entry);
    }
  }

  /** The visitor asked to send a failed message again (same clientActivityID). */
  retry(clientId) {
    const entry = this.#entries.get(clientId);
    if (!entry || entry.status !== 'failed') return;
    this.#emit('retry', entry);
    this.#enqueue(entry);
  }

  /**
   * The stream echoed one of ours (possibly before the POST's answer): it is delivered.
   * Returns the entry, or null when the id is not ours.
   */
  confirm(clientId, id, timestamp) {
    const entry = this.#entries.get(clientId);
    if (!entry) return null;
    if (id) entry.id = id;
    if (typeof timestamp === 'string') entry.at = timestamp;
    const wasPending = entry.status === 'sending' || entry.status === 'failed';
    entry.status = 'delivered';
    entry.error = '';
    entry.note = '';
    this.#entries.delete(clientId);
    this.#persist();
    this.dispatchEvent(new CustomEvent('delivered', { detail: { entry, wasPending, timestamp } }));
    return entry;
  }

  /** Forget every message (a new conversation); deliveries in flight stop. */
  clear() {
    storage.remove(KEYS.outbox);
    this.#entries.clear();
  }

  #emit(type, entry) {
    this.dispatchEvent(new CustomEvent(type, { detail: { entry } }));
  }

  #enqueue(entry) {
    entry.status = 'sending';
    entry.error = '';
    entry.note = '';
    this.#emit('change', entry);
    this.#persist();
    this.#chain = this.#chain.then(() => this.#deliver(entry));
  }

  async #deliver(entry) {
    const current = () => this.#entries.get(entry.clientId) === entry && entry.status === 'sending';
    if (!current()) return;
    try {
      await this.#client.whenReady();
      if (!current()) return; // "New conversation" discarded it meanwhile
      let result;
      for (let attempt = 1; ; attempt += 1) {
        try {
          result = await this.#client.post({
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
          entry.note = err.message;
          this.#emit('change', entry);
          await new Promise((r) => setTimeout(r, Math.min(MAX_WAIT_S, err.retryAfter) * 1000));
          if (!current()) return;
          entry.note = '';
          this.#emit('change', entry);
        }
      }
      if (!current()) return;
      if (typeof result.id === 'string' && result.id) entry.id = result.id;
      // Stored by the service (a reload replays it); the echo on the stream marks it delivered.
      entry.status = 'sent';
      this.#emit('change', entry);
      this.#persist();
    } catch (err) {
      if (!current()) return;
      entry.status = 'failed';
      entry.error = err.status >= 400 && err.status < 500 ? err.message : '';
      this.#emit('change', entry);
      this.#persist();
    }
  }

  #persist() {
    const pending = [];
    for (const entry of this.#entries.values()) {
      if (entry.status === 'sending' || entry.status === 'failed') {
        const { clientId, text, at, status, error } = entry;
        pending.push({ clientId, text, at, status, error });
      }
    }
    if (pending.length) storage.set(KEYS.outbox, pending);
    else storage.remove(KEYS.outbox);
  }
}
