// Validates an AsyncAPI document with @asyncapi/parser, the parser and rule set behind
// `asyncapi validate` of @asyncapi/cli (same parser version), without the CLI's 1.5 GB
// of dependencies. Resolves the document's $refs (docs/schemas/*.json) from its folder.
//   NODE_PATH=<dir>/node_modules node .ci/asyncapi-validate.cjs docs/asyncapi.yaml
'use strict';
const path = require('node:path');
const { Parser, fromFile } = require('@asyncapi/parser');

const SEVERITY = ['error', 'warning', 'info', 'hint'];

async function main() {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: asyncapi-validate.cjs <asyncapi.yaml>');
    process.exit(2);
  }
  const parser = new Parser();
  const { document, diagnostics } = await fromFile(parser, path.resolve(file)).parse();
  for (const d of diagnostics) {
    const where = (d.path || []).join('.');
    console.log(`${SEVERITY[d.severity] || d.severity} ${d.code} ${where}: ${d.message}`);
  }
  const errors = diagnostics.filter((d) => d.severity === 0).length;
  const warnings = diagnostics.filter((d) => d.severity === 1).length;
  // Warnings fail too: the document is ours, so it has none.
  if (!document || errors > 0 || warnings > 0) {
    console.error(`asyncapi-validate: ${file} is not valid (${errors} errors, ${warnings} warnings)`);
    process.exit(1);
  }
  const version = document.version();
  const channels = document.channels().length;
  const operations = document.operations().length;
  const messages = document.allMessages().length;
  console.log(
    `asyncapi-validate: ${file} is a valid AsyncAPI ${version} document ` +
      `(${channels} channels, ${operations} operations, ${messages} messages)`,
  );
}

main().catch((e) => {
  console.error(`asyncapi-validate: ${e.stack || e}`);
  process.exit(1);
});
