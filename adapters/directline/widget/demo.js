/*
 * The demo website's "Demo visitor" bar: who the visitor is, given to the widget through its
 * public API (a real site would pass its signed-in user the same way). Not part of the widget.
 */

import { handoffWidget } from './widget.js';

const VISITOR_KEY = 'contosoChat.visitor.v1'; // the form's last applied values, for the next page
const FIELDS = ['name', 'email', 'company'];

function read(key) {
  try {
    const raw = window.sessionStorage.getItem(key);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

function write(key, value) {
  try {
    window.sessionStorage.setItem(key, JSON.stringify(value));
  } catch {
    /* storage full or disabled */
  }
}

function formValues() {
  const values = {};
  for (const key of FIELDS) {
    const input = document.getElementById(`visitor-${key}`);
    values[key] = input ? input.value.trim().slice(0, 200) : '';
  }
  return values;
}

function bindVisitorForm() {
  const form = document.getElementById('demo-visitor');
  if (!form) return;
  const saved = read(VISITOR_KEY);
  if (saved && typeof saved === 'object') {
    for (const key of FIELDS) {
      const input = document.getElementById(`visitor-${key}`);
      if (input && typeof saved[key] === 'string') input.value = saved[key];
    }
  }
  handoffWidget.setVisitor(formValues()); // before the chat connects: nothing is sent yet

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
    const values = formValues();
    write(VISITOR_KEY, values);
    const pending = handoffWidget.setVisitor(values);
    say('Sending…');
    try {
      say((await pending) === 'sent' ? 'Visitor context sent ✓' : 'Saved — sent when the chat starts.');
    } catch (err) {
      say(`Not sent: ${err.message}`);
    }
  });
}

bindVisitorForm();
