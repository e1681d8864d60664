/*
 * One JSON request to the Direct Line service. Errors come back as ApiError with the HTTP status
 * (0 when there was no answer), the service's error code and message, and its Retry-After.
 */

const FETCH_TIMEOUT_MS = 20000; // a request without an answer this long counts as no connection

export class ApiError extends Error {
  constructor(status, code, message, retryAfter = 0) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter; // seconds the server asked us to wait (429, 503)
  }
}

export async function api(method, url, { token, body } = {}) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let response;
  const controller = typeof AbortController === 'function' ? new AbortController() : null;
  const timer = controller ? setTimeout(() => controller.abort(), FETCH_TIMEOUT_MS) : 0;
  try {
    response = await fetch(url, {
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
