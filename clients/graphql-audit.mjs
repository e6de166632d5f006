// The GraphQL-over-HTTP reference audit (`graphql-http`'s server audits) against a running
// server at BASE_URL: every audit must pass, with no error and no warning.
import { serverAudits } from "graphql-http";

const url = `${process.env.BASE_URL ?? "http://127.0.0.1:8000"}/graphql`;
const counts = { ok: 0, notice: 0, warn: 0, error: 0 };
for (const audit of serverAudits({ url })) {
  const result = await audit.fn();
  counts[result.status] += 1;
  // Notices are for MAY rules: reported, not failed.
  if (result.status !== "ok") console.log(`${result.status.toUpperCase()} ${audit.name}: ${result.reason}`);
}
console.log(
  `graphql-http audit: ${counts.ok} ok, ${counts.notice} notices, ${counts.warn} warnings, ${counts.error} errors`,
);
process.exit(counts.warn + counts.error ? 1 : 0);
