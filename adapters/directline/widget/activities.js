/*
 * Reading what arrives on the stream. Everything here is untrusted input: fields are checked for
 * type and shape, and the result is a plain record the wiring can act on.
 */

const MAX_CHOICES = 8;
const MAX_CHOICE_LABEL = 80;

/** 'user' (the visitor, from any tab), 'specialist' (a person in Teams), or 'bot'. */
export function roleOf(activity) {
  const from = activity.from && typeof activity.from === 'object' ? activity.from : {};
  if (from.role === 'user') return 'user';
  const handoff = activity.channelData && typeof activity.channelData === 'object'
    ? activity.channelData.handoff
    : null;
  return handoff && typeof handoff === 'object' && handoff.senderRole === 'specialist'
    ? 'specialist'
    : 'bot';
}

export function senderName(activity, role) {
  if (role === 'user') return 'You';
  const name = activity.from && typeof activity.from.name === 'string' ? activity.from.name.trim() : '';
  return name || (role === 'specialist' ? 'Specialist' : 'Virtual assistant');
}

/**
 * Direct Line suggestedActions as choices {label, text, value}: a click sends the action's text
 * (shown as the visitor's message) with its value, as Web Chat does for messageBack.
 */
export function choicesOf(activity) {
  const suggested = activity.suggestedActions;
  const actions = suggested && Array.isArray(suggested.actions) ? suggested.actions : [];
  return actions
    .filter((a) => a && typeof a.title === 'string' && a.title.trim())
    .slice(0, MAX_CHOICES)
    .map((action) => {
      const label = action.title.slice(0, MAX_CHOICE_LABEL);
      const text = typeof action.text === 'string' && action.text ? action.text : label;
      return { label, text, value: action.value };
    });
}

/**
 * An activity as a record: {type, id, role, name, text, timestamp, clientId, choices, event,
 * value, replyToId}, or null when it is not an object.
 */
export function readActivity(activity) {
  if (!activity || typeof activity !== 'object') return null;
  const role = roleOf(activity);
  const channelData = activity.channelData && typeof activity.channelData === 'object'
    ? activity.channelData
    : {};
  return {
    type: activity.type,
    id: typeof activity.id === 'string' && activity.id ? activity.id : null,
    role,
    name: senderName(activity, role),
    text: typeof activity.text === 'string' ? activity.text : '',
    timestamp: typeof activity.timestamp === 'string' ? activity.timestamp : null,
    clientId: typeof channelData.clientActivityID === 'string' ? channelData.clientActivityID : null,
    choices: activity.type === 'message' ? choicesOf(activity) : [],
    event: activity.type === 'event' && typeof activity.name === 'string' ? activity.name : null,
    value: activity.value && typeof activity.value === 'object' ? activity.value : {},
    replyToId: typeof activity.replyToId === 'string' ? activity.replyToId : '',
  };
}

/**
 * Whether it happened now rather than in a replay: within maxAgeMs when given, else since the
 * page loaded (less a little clock skew). No timestamp counts as fresh.
 */
export function isFresh(timestamp, { maxAgeMs = 0, since = 0 } = {}) {
  const at = Date.parse(timestamp);
  if (Number.isNaN(at)) return true;
  if (maxAgeMs) return Date.now() - at < maxAgeMs;
  return at >= since - 5000;
}
