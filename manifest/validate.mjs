#!/usr/bin/env node
// Validate a Teams app manifest against Microsoft's official JSON schema, offline.
//
// Usage:
//   node manifest/validate.mjs manifest.json          (or "-" to read stdin)
//   node manifest/validate.mjs --schema PATH manifest.json
//
// The schema comes from the npm package "@microsoft/app-manifest" (pinned in
// tests/e2e/node/package.json): build/json-schemas/teams/v<manifestVersion>/MicrosoftTeams.schema.json,
// picked by the manifest's own "manifestVersion" unless --schema names a file.
// The check is configured like the package's AppManifestUtils.validateAgainstSchema: Ajv for
// draft-04 (the schemas' dialect), all errors, formats uri/email/regex. The package's own
// entry point cannot be loaded (it requires fs-extra, which it lists only as a dev dependency),
// so ajv, ajv-draft-04 and ajv-formats are pinned next to it at the versions it resolves.
//
// Output on stdout: {"schema": PATH, "manifestVersion": V, "errors": ["/path message", ...]}
// Exit code: 0 valid, 1 invalid, 2 when the input or the schema could not be read.

import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const NODE_DIR = join(dirname(fileURLToPath(import.meta.url)), "..", "tests", "e2e", "node");
const require = createRequire(join(NODE_DIR, "package.json"));

// Nothing here may reach the network: a schema $ref that needs fetching is a failure, not a
// silent download.
globalThis.fetch = () => {
  throw new Error("network access is disabled: the manifest is validated offline");
};

function fail(message) {
  process.stderr.write(`validate-manifest: ${message}\n`);
  return 2;
}

function parseArgs(argv) {
  const args = { schema: undefined, input: undefined };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--schema") {
      args.schema = argv[++i];
    } else if (args.input === undefined) {
      args.input = argv[i];
    } else {
      throw new Error(`unexpected argument ${argv[i]}`);
    }
  }
  if (!args.input) throw new Error("usage: validate.mjs [--schema PATH] manifest.json|-");
  return args;
}

function schemaPathFor(manifestVersion) {
  const packageJson = require.resolve("@microsoft/app-manifest/package.json");
  return join(
    dirname(packageJson), "build", "json-schemas", "teams", `v${manifestVersion}`,
    "MicrosoftTeams.schema.json",
  );
}

function readSchema(path) {
  // Some published schemas hold the regex escapes \a and \v, which JSON does not allow; the
  // package applies the same substitution when it loads them.
  const raw = readFileSync(path, "utf8").replace(/\\a/g, "\\u0007").replace(/\\v/g, "\\u000b");
  return JSON.parse(raw);
}

function main() {
  let args;
  let manifest;
  try {
    args = parseArgs(process.argv.slice(2));
    const text = readFileSync(args.input === "-" ? 0 : args.input, "utf8");
    manifest = JSON.parse(text.replace(/^\uFEFF/, ""));
  } catch (exc) {
    return fail(`cannot read the manifest: ${exc.message}`);
  }
  if (manifest === null || typeof manifest !== "object" || Array.isArray(manifest)) {
    return fail("the manifest must be a JSON object");
  }
  const version = manifest.manifestVersion;
  let schemaPath;
  try {
    schemaPath = args.schema ?? (typeof version === "string" ? schemaPathFor(version) : "");
  } catch (exc) {
    return fail(`@microsoft/app-manifest is not installed (run \`npm ci\` in ${NODE_DIR}): ${exc.message}`);
  }
  if (!schemaPath || !existsSync(schemaPath)) {
    return fail(
      `no schema for manifestVersion ${JSON.stringify(version)} in @microsoft/app-manifest` +
        (schemaPath ? ` (looked for ${schemaPath})` : ""),
    );
  }

  let validate;
  try {
    const schema = readSchema(schemaPath);
    if (!String(schema.$schema ?? "").includes("draft-04")) {
      return fail(`${schemaPath} is not a draft-04 schema ($schema: ${schema.$schema})`);
    }
    const Ajv = require("ajv-draft-04");
    const addFormats = require("ajv-formats");
    const ajv = new Ajv({ allErrors: true, strictTypes: false });
    addFormats(ajv, ["uri", "email", "regex"]);
    validate = ajv.compile(schema);
  } catch (exc) {
    return fail(`cannot load the schema ${schemaPath}: ${exc.message}`);
  }

  const valid = validate(manifest);
  const errors = valid
    ? []
    : validate.errors.map(
        (e) => `${e.instancePath || "/"} ${e.message ?? ""} ${JSON.stringify(e.params ?? {})}`.trim(),
      );
  process.stdout.write(
    JSON.stringify({ schema: schemaPath, manifestVersion: version, errors }, null, 2) + "\n",
  );
  return valid ? 0 : 1;
}

process.exitCode = main();
