/*
 * The Direct Line 3.0 client: starts or resumes the conversation, keeps its WebSocket alive,
 * reconnects with back-off and replays from the watermark, renews the token, and posts
 * activities. It knows nothing about the screen: it emits events, and the wiring decides.
 *
 * Events (CustomEvent, details in braces):
 *   activity    {activity, lastInFrame, replayFrame}  one per activity on the stream, in order
 *   connection  {state: 'open' | 'reconnecting' | 'offline' | 'idle'}
 *   ready       {epoch}     the conversation takes posts (after every (re)connect)
 *   reset       {}          the conversation was forgotten (a new one starts from nothing)
 *   lost        {message}   the stored conversation ended or expired; a new one is starting
 */

import { api, ApiError } from './http.js';
import { randomId } from './state.js';

const PING_MS = 25000; // send "" on the socket this often
const STALE_MS = 65000; // the server sends a keep-alive every 20 s; silence this long = dead
const HEALTHY_MS = 10000; // a socket open this long resets the back-off
const BACKOFF_MAX_MS = 30000;
const READY_TIMEOUT_MS = 20000; // a post waits this long for a connection before failing
const REFRESH_MARGIN_MS = 5 * 60 * 1000; // refresh the token this long before it expires
const TYPING_SEND_MS = 3000;

const STALE = new Error('stale'); // thrown when a newer conversation replaced this attempt
const enc = encodeURIComponent;

export class DirectLineClient extends EventTarget {
  #domain;
  #session;
  #visitorName;
  #epoch = 0; // bumped whenever the conversation is replaced; stale async work checks it
  #ready = false; // conversation id + token usable for POSTs
  #readyWaiters = [];
  #socket = null;
  #socketSeq = 0;
  #lastFrameAt = 0;
  #pingTimer = 0;
  #healthyTimer = 0;
  #failures = 0;
  #connectTimer = 0;
  #connectRun = 0;
  #runSeq = 0;
  #refreshTimer = 0;
  #dormant = false; // closed for idleness: no socket until the visitor is back
  #unloading = false;
  #lastTypingSent = 0;

  /**
   * domain: the Direct Line base URL (".../v3/directline"); session: a state.Session;
   * visitorName: () => the name to show for the visitor.
   */
  constructor({ domain, session, visitorName }) {
    super();
    this.#domain = String(domain).replace(/\/+$/, '');
    this.#session = session;
    this.#visitorName = visitorName;
  }

  get epoch() {
    return this.#epoch;
  }

  get ready() {
    return this.#ready;
  }

  get connected() {
    return Boolean(this.#socket && this.#socket.readyState === WebSocket.OPEN);
  }

  get conversationId() {
    return this.#session.conversationId;
  }

  // ---- when to connect ---------------------------------------------------------------------

  /** Connect (or resume) now. */
  start() {
    this.#schedule(0);
  }

  /** Connect unless connected or already trying (the visitor opened the panel). */
  ensureConnected() {
    if (!this.#ready && !this.#connectRun) this.#schedule(0);
  }

  /** Try again now, forgetting the back-off ("Retry now"). */
  retryNow() {
    this.#failures = 0;
    this.#schedule(0);
  }

  /** The browser is online again. */
  networkBack() {
    if (!this.#socket) this.retryNow();
  }

  /** The visitor is back (focus, pointer, key): a socket closed for idleness reconnects. */
  wake() {
    if (!this.#dormant) return;
    this.#dormant = false;
    this.#schedule(0);
  }

  /** The page is visible again: wake, renew an overdue token, replace a socket gone silent. */
  revisit() {
    if (!this.#session.token) return;
    this.wake();
    if (this.#session.refreshAt && Date.now() >= this.#session.refreshAt) this.#refreshToken();
    if (this.#socket && Date.now() - this.#lastFrameAt > STALE_MS) {
      this.#closeSocket();
      this.#socketLost();
    }
  }

  /** The page is going away: a socket closing now is not a reason to reconnect. */
  pageHidden() {
    this.#unloading = true;
  }

  /** The page is shown again (persisted = restored from the back/forward cache). */
  pageShown(persisted) {
    this.#unloading = false;
    if (persisted && this.#session.conversationId && !this.#socket) this.#schedule(0);
  }

  /** Abandon this conversation and every piece of async work still running for it; start anew. */
  newConversation() {
    this.#epoch += 1;
    this.#connectRun = 0;
    clearTimeout(this.#connectTimer);
    this.#forget();
    this.#failures = 0;
    this.#emit('connection', { state: 'idle' });
    this.#schedule(0);
  }

  /** Resolves when the conversation takes posts; rejects after timeoutMs. */
  whenReady(timeoutMs = READY_TIMEOUT_MS) {
    if (this.#ready) return Promise.resolve();
    this.#dormant = false;
    if (!this.#connectRun) this.#schedule(0);
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      const timer = setTimeout(() => {
        this.#readyWaiters = this.#readyWaiters.filter((w) => w !== waiter);
        reject(new ApiError(0, 'NotConnected', 'Could not reach the chat service.'));
      }, timeoutMs);
      this.#readyWaiters.push(waiter);
    });
  }

  // ---- posting -----------------------------------------------------------------------------

  /** Post an activity (waiting for a connection); resolves with the service's {id}. */
  async post(activity) {
    await this.whenReady();
    const { clientActivityID, ...fields } = activity;
    const body = {
      ...fields,
      from: this.#from(),
      locale: navigator.language,
      channelData: { clientActivityID: clientActivityID || randomId() },
    };
    try {
      return await api('POST', this.#activitiesUrl(), { token: this.#session.token, body });
    } catch (err) {
      if (err.status === 403 || err.status === 404) {
        // Probably an expired token or a forgotten conversation: re-check it now.
        this.#ready = false;
        this.#schedule(0);
      }
      throw err;
    }
  }

  /** Post an event; a network or server error is retried with back-off, under one id. */
  async postEvent(name, value, { attempts = 1 } = {}) {
    const clientActivityID = randomId(); // the same id on every attempt: the server dedupes
    for (let attempt = 1; ; attempt += 1) {
      try {
        const activity = { type: 'event', name, clientActivityID };
        if (value !== undefined) activity.value = value;
        return await this.post(activity);
      } catch (err) {
        const retriable = err.status === 0 || err.status >= 500;
        if (!retriable || attempt >= attempts) throw err;
        await new Promise((r) => setTimeout(r, 1000 * 2 ** (attempt - 1)));
      }
    }
  }

  /** Tell the other side the visitor is typing (at most every few seconds, only if connected). */
  typing() {
    const now = Date.now();
    if (!this.#ready || now - this.#lastTypingSent <= TYPING_SEND_MS) return;
    this.#lastTypingSent = now;
    this.post({ type: 'typing' }).catch(() => {});
  }

  /** Post on the current conversation without waiting or retrying (best effort, e.g. leaving). */
  postNow(activity) {
    if (!this.#ready) return;
    api('POST', this.#activitiesUrl(), {
      token: this.#session.token,
      body: { ...activity, from: this.#from(), channelData: { clientActivityID: randomId() } },
    }).catch(() => {});
  }

  #from() {
    return { id: this.#session.userId, name: this.#visitorName() || 'Visitor' };
  }

  #activitiesUrl() {
    return `${this.#domain}/conversations/${enc(this.#session.conversationId)}/activities`;
  }

  #emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  // ---- connecting --------------------------------------------------------------------------

  #schedule(delay) {
    clearTimeout(this.#connectTimer);
    this.#connectTimer = setTimeout(() => this.#runConnect(), delay);
  }

  #backoff() {
    return Math.min(BACKOFF_MAX_MS, 1000 * 2 ** Math.max(0, this.#failures - 1));
  }

  async #runConnect() {
    if (this.#connectRun) return;
    const run = ++this.#runSeq;
    this.#connectRun = run;
    const epoch = this.#epoch;
    let error = null;
    try {
      await this.#establish(epoch);
    } catch (err) {
      error = err;
    }
    if (this.#connectRun === run) this.#connectRun = 0;
    if (epoch !== this.#epoch || error === STALE) return; // a newer conversation took over
    if (!error) return;
    this.#failures += 1;
    const delay = this.#backoff();
    console.warn(`chat widget: connection failed (${error.message}); retrying in ${delay} ms`);
    this.#emit('connection', { state: error.status === 0 ? 'offline' : 'reconnecting' });
    this.#schedule(delay);
  }

  async #establish(epoch) {
    const session = this.#session;
    const check = () => {
      if (epoch !== this.#epoch) throw STALE;
    };
    if (session.conversationId && session.token) {
      const watermark = session.renderedWatermark || '0';
      try {
        const resumed = await api(
          'GET',
          `${this.#domain}/conversations/${enc(session.conversationId)}?watermark=${enc(watermark)}`,
          { token: session.token },
        );
        check();
        if (typeof resumed.token === 'string' && resumed.token) session.token = resumed.token;
        if (resumed.expires_in !== undefined) this.#setExpiry(resumed.expires_in);
        session.save();
        this.#openSocket(String(resumed.streamUrl), epoch);
        this.#connected(epoch);
        return;
      } catch (err) {
        if (err === STALE) throw err;
        if (err.status !== 403 && err.status !== 404) throw err;
        check();
        this.#forget();
        this.#emit('lost', {
          message: err.status === 404 ? 'Your previous chat has ended.' : 'Your previous chat session expired.',
        });
      }
    }
    const name = this.#visitorName() || 'Visitor';
    const issued = await api('POST', `${this.#domain}/tokens/generate`, { body: { user: { name } } });
    check();
    const started = await api('POST', `${this.#domain}/conversations`, { token: String(issued.token) });
    check();
    session.conversationId = String(started.conversationId || issued.conversationId);
    session.token = String(started.token || issued.token);
    this.#setExpiry(started.expires_in !== undefined ? started.expires_in : issued.expires_in);
    session.watermark = null;
    session.renderedWatermark = null;
    session.save();
    this.#openSocket(String(started.streamUrl), epoch);
    this.#connected(epoch);
  }

  #connected(epoch) {
    this.#ready = true;
    const waiters = this.#readyWaiters;
    this.#readyWaiters = [];
    waiters.forEach((w) => w.resolve());
    this.#scheduleRefresh();
    this.#emit('ready', { epoch });
  }

  /** Drop the conversation: no id, no token, no socket; the next connect starts a new one. */
  #forget() {
    this.#session.forget();
    this.#ready = false;
    clearTimeout(this.#refreshTimer);
    this.#closeSocket();
    this.#emit('reset');
  }

  // ---- the socket --------------------------------------------------------------------------

  #openSocket(url, epoch) {
    this.#closeSocket();
    const mySeq = ++this.#socketSeq;
    let opened = false;
    let firstFrame = true;
    const ws = new WebSocket(url);
    this.#socket = ws;
    this.#lastFrameAt = Date.now();

    ws.addEventListener('open', () => {
      if (mySeq !== this.#socketSeq) return;
      opened = true;
      this.#lastFrameAt = Date.now();
      this.#emit('connection', { state: 'open' });
      clearTimeout(this.#healthyTimer);
      this.#healthyTimer = setTimeout(() => {
        if (mySeq === this.#socketSeq) this.#failures = 0;
      }, HEALTHY_MS);
    });
    ws.addEventListener('message', (event) => {
      if (mySeq !== this.#socketSeq || epoch !== this.#epoch) return;
      this.#lastFrameAt = Date.now();
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
        this.#emit('activity', { activity, lastInFrame: index === activities.length - 1, replayFrame });
      });
      if (frame.watermark !== undefined && frame.watermark !== null && frame.watermark !== '') {
        this.#session.watermark = String(frame.watermark);
        this.#session.renderedWatermark = this.#session.watermark;
        this.#session.save();
      }
    });
    ws.addEventListener('close', (event) => {
      if (mySeq !== this.#socketSeq) return; // replaced on purpose
      this.#socket = null;
      clearTimeout(this.#healthyTimer);
      if (this.#unloading || epoch !== this.#epoch) return;
      if (event.code === 1000 && event.reason === 'idle') {
        // Nothing happened for long: reconnect (and replay) when the visitor comes back.
        this.#dormant = true;
        this.#ready = false;
        clearInterval(this.#pingTimer);
        return;
      }
      if (!opened) this.#failures += 1;
      this.#socketLost();
    });
    clearInterval(this.#pingTimer);
    this.#pingTimer = setInterval(() => {
      if (mySeq !== this.#socketSeq) return;
      if (Date.now() - this.#lastFrameAt > STALE_MS) {
        // Silent for too long (sleeping laptop, dead proxy): drop it and reconnect.
        this.#closeSocket();
        this.#socketLost();
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

  #closeSocket() {
    this.#socketSeq += 1; // disown the old socket's events
    clearInterval(this.#pingTimer);
    clearTimeout(this.#healthyTimer);
    if (this.#socket) {
      try {
        this.#socket.close(1000);
      } catch {
        /* ignore */
      }
    }
    this.#socket = null;
  }

  #socketLost() {
    this.#emit('connection', { state: 'reconnecting' });
    this.#schedule(this.#failures ? this.#backoff() : 250);
  }

  // ---- tokens ------------------------------------------------------------------------------

  #setExpiry(expiresIn) {
    const ttlMs = Math.max(0, Number(expiresIn) || 0) * 1000;
    const now = Date.now();
    this.#session.expiresAt = now + ttlMs;
    this.#session.refreshAt = now + Math.max(ttlMs - Math.min(REFRESH_MARGIN_MS, ttlMs / 2), 5000);
  }

  #scheduleRefresh() {
    clearTimeout(this.#refreshTimer);
    if (!this.#session.token || !this.#session.refreshAt) return;
    this.#refreshTimer = setTimeout(
      () => this.#refreshToken(),
      Math.max(0, this.#session.refreshAt - Date.now()),
    );
  }

  async #refreshToken() {
    const epoch = this.#epoch;
    const session = this.#session;
    if (!session.token) return;
    try {
      const refreshed = await api('POST', `${this.#domain}/tokens/refresh`, { token: session.token });
      if (epoch !== this.#epoch) return;
      if (typeof refreshed.token === 'string' && refreshed.token) session.token = refreshed.token;
      this.#setExpiry(refreshed.expires_in);
      session.save();
      this.#scheduleRefresh();
    } catch (err) {
      if (epoch !== this.#epoch) return;
      if (err.status === 401 || err.status === 403 || err.status === 404) {
        // The token can no longer be renewed: let the reconnect path decide what is left.
        this.#ready = false;
        this.#schedule(0);
        return;
      }
      clearTimeout(this.#refreshTimer);
      const left = session.expiresAt - Date.now();
      this.#refreshTimer = setTimeout(() => this.#refreshToken(), Math.max(5000, Math.min(30000, left / 2)));
    }
  }
}
