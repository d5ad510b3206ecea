// Validates an AsyncAPI document with the AsyncAPI project's own parser (@asyncapi/parser) and its
// Avro schema parser (@asyncapi/avro-schema-parser), as the rig installs them (.ci/rig/common.sh
// ensure_npm_tools; NODE_PATH names their node_modules).
//
// The parser's AsyncAPI 3 ruleset (3.6) validates the document's structure, bindings and references
// but, unlike its AsyncAPI 2 ruleset, neither validates payload schemas of other formats nor checks
// message examples against their schemas. So this script also does what the 2.x rules
// asyncapi2-schemas and asyncapi2-message-examples do: every Avro payload through the Avro schema
// parser's validate() (avsc), and every example's payload and headers, where their schema is in
// AsyncAPI's default format (JSON Schema), with ajv as those rules do. Findings of either are errors.
//
// Prints one JSON line per diagnostic, a line describing the parsed document and a summary line
// "errors=N warnings=N infos=N hints=N"; exits 1 when the document has any error or warning, 2
// when it cannot run.
//
// usage: node validate-asyncapi.cjs FILE
"use strict";
const fs = require("fs");
const { Parser, DiagnosticSeverity } = require("@asyncapi/parser");
const { AvroSchemaParser } = require("@asyncapi/avro-schema-parser");
const Ajv = require("ajv");
const addFormats = require("ajv-formats");

const AVRO = "application/vnd.apache.avro+json;version=1.9.0";

async function main() {
  const file = process.argv[2];
  if (!file) {
    console.error("usage: node validate-asyncapi.cjs FILE");
    process.exit(2);
  }
  const text = fs.readFileSync(file, "utf8");
  const parser = new Parser();
  const avro = AvroSchemaParser();
  parser.registerSchemaParser(avro);
  const { document, diagnostics } = await parser.parse(text, { source: file });
  const count = { errors: 0, warnings: 0, infos: 0, hints: 0 };
  const names = { [DiagnosticSeverity.Error]: "errors", [DiagnosticSeverity.Warning]: "warnings",
    [DiagnosticSeverity.Information]: "infos", [DiagnosticSeverity.Hint]: "hints" };
  const report = (severity, code, path, message) => {
    count[severity]++;
    console.log(JSON.stringify({ severity, code, path, message }));
  };
  for (const d of diagnostics) {
    report(names[d.severity], d.code, d.path.join("."), d.message);
  }

  // The raw document: schemas as written, before the parser converted the Avro ones.
  const raw = JSON.parse(text);
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  let avroChecked = 0, examplesChecked = 0;
  for (const [id, m] of Object.entries((raw.components || {}).messages || {})) {
    const path = `components.messages.${id}`;
    const p = m.payload || {};
    const avroPayload = p.schemaFormat === AVRO;
    if (avroPayload) {
      avroChecked++;
      for (const d of await avro.validate({ data: p.schema, path: [path, "payload"] })) {
        report("errors", "avro-schema", `${path}.payload`, d.message);
      }
    }
    for (const [i, ex] of (m.examples || []).entries()) {
      const check = (schema, value, what) => {
        const validate = ajv.compile(schema);
        examplesChecked++;
        if (!validate(value)) {
          for (const e of validate.errors) {
            report("errors", "message-example", `${path}.examples.${i}.${what}${e.instancePath.replace(/\//g, ".")}`, e.message);
          }
        }
      };
      if (!avroPayload && ex.payload !== undefined) check(p.schema || p, ex.payload, "payload");
      if (m.headers && !m.headers.schemaFormat && ex.headers !== undefined) check(m.headers, ex.headers, "headers");
    }
  }
  if (document) {
    console.log(`parsed: asyncapi ${document.version()}, ${document.servers().length} servers, ` +
      `${document.channels().length} channels, ${document.operations().length} operations, ` +
      `${document.components().messages().length} messages; ${avroChecked} Avro payloads and ` +
      `${examplesChecked} example payloads/headers validated`);
  }
  console.log(`errors=${count.errors} warnings=${count.warnings} infos=${count.infos} hints=${count.hints}`);
  process.exit(document && count.errors === 0 && count.warnings === 0 ? 0 : 1);
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(2);
});
