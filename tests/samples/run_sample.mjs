// Runs a seed JavaScript sample against a test agent, changing only what a reader would change.
//
//     node run_sample.mjs SAMPLE BASE USERNAME
//
// * `http://localhost:29123` (the sample's `base` and its CallbackUrl) becomes BASE, and
//   `user@example.com` becomes USERNAME, as plain text substitutions of the sample's source;
// * `CODE_FROM_IDP_REDIRECT` is replaced when the sample sends it: the code only exists after
//   the sample's first step printed the URL and someone signed in at the IdP, so this reads
//   the code as one line from stdin at that moment (the test plays the user and writes it).
//
// Everything else runs exactly as written, with node's own fetch, as an ES module (the sample
// uses top-level await).
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";

const PLACEHOLDER = "CODE_FROM_IDP_REDIRECT";
const [sample, base, username] = process.argv.slice(2);
const source = readFileSync(sample, "utf8")
  .replaceAll("http://localhost:29123", base)
  .replaceAll("user@example.com", username);

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const realFetch = globalThis.fetch;
globalThis.fetch = async (url, init = {}) => {
  if (typeof init.body === "string" && init.body.includes(PLACEHOLDER)) {
    const { value } = await lines.next();
    const body = JSON.parse(init.body);
    body.AuthorizationCode = (value ?? "").trim();
    init = { ...init, body: JSON.stringify(body) };
  }
  return realFetch(url, init);
};

await import("data:text/javascript," + encodeURIComponent(source));
process.exit(0);
