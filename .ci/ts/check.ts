// Compiled (never run) by .ci/clients: a web app's use of a client generated from
// openapi.yaml. A type error here means the document lost or changed something a
// web app relies on.
import createClient from "openapi-fetch";
import type { components, paths } from "./schema";

type User = components["schemas"]["User"];
type ErrorEnvelope = components["schemas"]["ErrorEnvelope"];

const api = createClient<paths>({ baseUrl: "http://localhost:8080" });

export async function adminDay(password: string): Promise<User[]> {
  const login = await api.POST("/api/v1/auth/login", { body: { email: "admin@localhost", password } });
  if (login.error) {
    const e: ErrorEnvelope = login.error;
    throw new Error(`${e.error.code}: ${e.error.message}`);
  }
  const token: string = login.data.access_token;
  const ttl: number = login.data.expires_in;
  const headers = { Authorization: `Bearer ${token}` };
  await api.POST("/api/v1/domains", { headers, body: { name: "example.com" } });
  await api.POST("/api/v1/users", {
    headers,
    body: { email: "alice@example.com", password: "alice-secret-1", role: "user", quota_bytes: 0 },
  });
  await api.POST("/api/v1/groups", {
    headers,
    body: { email: "team@example.com", members: ["alice@example.com"] },
  });
  await api.PUT("/api/v1/groups/{email}/members/{member}", {
    headers,
    params: { path: { email: "team@example.com", member: "alice@example.com" } },
  });
  const users: User[] = [];
  let cursor: string | undefined;
  do {
    const page = await api.GET("/api/v1/users", { headers, params: { query: { limit: 50, cursor } } });
    if (page.error) throw new Error(page.error.error.message);
    users.push(...page.data.items);
    cursor = page.data.next_cursor || undefined;
  } while (cursor);
  const role: "user" | "admin" = users[0].role;
  void role;
  void ttl;
  await api.DELETE("/api/v1/domains/{domain}", { headers, params: { path: { domain: "example.com" }, query: { force: true } } });
  return users;
}
