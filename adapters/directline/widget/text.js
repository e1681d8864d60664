/*
 * Conversation text on screen. Visitor and specialist text is data: it becomes text nodes, and
 * an http(s) URL becomes a link whose visible text is exactly its address (never disguised).
 */

import { h } from './dom.js';

export function hhmm(timestamp) {
  const date = timestamp ? new Date(timestamp) : new Date();
  if (Number.isNaN(date.getTime())) return '';
  return `${String(date.getHours()).padStart(2, '0')}:${String(date.getMinutes()).padStart(2, '0')}`;
}

export function initials(name) {
  const words = String(name || '')
    .trim()
    .split(/\s+/)
    .filter(Boolean);
  if (!words.length) return '?';
  const first = Array.from(words[0])[0] || '';
  const last = words.length > 1 ? Array.from(words[words.length - 1])[0] || '' : '';
  return (first + last).toUpperCase();
}

export function safeHttpUrl(candidate) {
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
export function trimUrl(raw) {
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
export function renderText(text) {
  const fragment = document.createDocumentFragment();
  let cursor = 0;
  for (const match of text.matchAll(URL_PATTERN)) {
    const raw = trimUrl(match[0]);
    const parsed = raw && safeHttpUrl(raw);
    if (!parsed) continue;
    const start = match.index;
    if (start > cursor) fragment.append(document.createTextNode(text.slice(cursor, start)));
    fragment.append(
      h('a', {
        href: raw,
        target: '_blank',
        rel: 'noopener noreferrer nofollow',
        title: parsed.href,
        text: raw,
      }),
    );
    cursor = start + raw.length;
  }
  if (cursor < text.length) fragment.append(document.createTextNode(text.slice(cursor)));
  return fragment;
}
