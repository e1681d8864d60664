#!/usr/bin/env node
// Validate Adaptive Cards with Microsoft's official parser (npm "adaptivecards", pinned 3.0.6).
//
// Usage:
//   node validate-cards.mjs card1.json [card2.json ...]
//   echo '[{"type": "AdaptiveCard", ...}, {"name": "x", "card": {...}}]' | node validate-cards.mjs
//
// A file may hold one card or an array of them. An array item is either a card or
// {"name": ..., "card": {...}}. Output on stdout:
//   {"results": [{"name": ..., "errors": [...], "warnings": [...]}]}
// Exit code: 0 when every card is clean, 1 when any card has an error or a warning,
// 2 when the input itself could not be read.
//
// Parsing needs no DOM (only rendering does), so no DOM shim is loaded. The package's
// "main" (lib/) is extensionless ESM that Node cannot resolve, so the UMD bundle in dist/
// is loaded instead; it is the same code the package ships to browsers.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const AC = require("adaptivecards/dist/adaptivecards.js");

// Events that are advice rather than a broken card; everything else is an error.
const WARNING_EVENTS = new Set([AC.ValidationEvent.Hint, AC.ValidationEvent.Deprecated]);

function describe(event) {
  const source = event.source;
  let where;
  if (source && typeof source.getJsonTypeName === "function") {
    where = source.getJsonTypeName();
    if (source.id) where += `#${source.id}`;
  }
  return {
    phase: AC.ValidationPhase[event.phase] ?? String(event.phase),
    event: AC.ValidationEvent[event.event] ?? String(event.event),
    ...(where ? { source: where } : {}),
    message: event.message,
  };
}

function targetVersionOf(json) {
  // Check version-gated features against the version the card declares (when the library
  // knows it); an unknown or too-new version is reported by validateProperties().
  const declared = typeof json.version === "string"
    ? AC.Version.parse(json.version, new AC.SerializationContext())
    : undefined;
  if (declared && declared.isValid && declared.compareTo(AC.Versions.latest) <= 0) {
    return declared;
  }
  return AC.Versions.latest;
}

function validateCard(name, json) {
  const errors = [];
  const warnings = [];
  const add = (entry, isWarning) => (isWarning ? warnings : errors).push(entry);

  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    errors.push({ phase: "Input", event: "Other", message: "a card must be a JSON object" });
    return { name, errors, warnings };
  }
  const card = new AC.AdaptiveCard();
  const context = new AC.SerializationContext(targetVersionOf(json));
  try {
    card.parse(json, context);
  } catch (exc) {
    errors.push({ phase: "Parse", event: "Exception", message: String(exc && exc.stack ? exc.stack : exc) });
    return { name, errors, warnings };
  }
  for (let i = 0; i < context.eventCount; i++) {
    const event = context.getEventAt(i);
    add(describe(event), WARNING_EVENTS.has(event.event));
  }

  const validation = card.validateProperties();
  for (const event of validation.validationEvents) {
    add(describe(event), WARNING_EVENTS.has(event.event));
  }
  return { name, errors, warnings };
}

function isNamed(item) {
  return item !== null && typeof item === "object" && !Array.isArray(item) && "card" in item && !("type" in item);
}

function expand(prefix, value) {
  if (Array.isArray(value)) {
    return value.map((item, i) =>
      isNamed(item) ? [String(item.name ?? `${prefix}[${i}]`), item.card] : [`${prefix}[${i}]`, item],
    );
  }
  return [isNamed(value) ? [String(value.name ?? prefix), value.card] : [prefix, value]];
}

function readInputs(argv) {
  if (argv.length > 0) {
    return argv.flatMap((path) => expand(path, JSON.parse(readFileSync(path, "utf8"))));
  }
  const text = readFileSync(0, "utf8");
  const value = JSON.parse(text);
  if (!Array.isArray(value)) {
    throw new Error("stdin must hold a JSON array of cards");
  }
  return expand("stdin", value);
}

function main() {
  let inputs;
  try {
    inputs = readInputs(process.argv.slice(2));
  } catch (exc) {
    process.stderr.write(`validate-cards: cannot read input: ${exc.message}\n`);
    return 2;
  }
  const results = inputs.map(([name, json]) => validateCard(name, json));
  process.stdout.write(JSON.stringify({ results }, null, 2) + "\n");
  return results.some((r) => r.errors.length || r.warnings.length) ? 1 : 0;
}

process.exitCode = main();
