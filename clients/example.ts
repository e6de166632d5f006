// A small typed client over both APIs, checked by `tsc` against the generated types: if the
// schema or the OpenAPI document changes incompatibly, `npm run codegen` fails.
import type { LoginMutation, LoginMutationVariables, MeQuery } from "./generated/graphql";
import createClient from "openapi-fetch";
import type { components, paths } from "./generated/rest";

type Token = components["schemas"]["Token"];
type ProfileOut = paths["/api/users/me/profile"]["get"]["responses"][200]["content"]["application/json"];
type ProfileUpdate = components["schemas"]["ProfileBody"];

export async function graphql<T>(base: string, query: string, variables: object, token?: string): Promise<T> {
  const response = await fetch(`${base}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: T; errors?: { message: string; extensions?: { code?: string } }[] };
  if (body.errors?.length) throw new Error(`${body.errors[0].extensions?.code}: ${body.errors[0].message}`);
  return body.data as T;
}

export async function loginGraphql(base: string, vars: LoginMutationVariables): Promise<string> {
  const data = await graphql<LoginMutation>(
    base,
    "mutation Login($email: String!, $password: String!) { login(input: { email: $email, password: $password }) { accessToken tokenType expiresIn } }",
    vars,
  );
  return data.login.accessToken;
}

export async function me(base: string, token: string): Promise<MeQuery["me"]> {
  return (await graphql<MeQuery>(base, "{ me { id email name createdAt updatedAt profile { id bio profilePhotoPath } } }", {}, token)).me;
}

export async function loginRest(base: string, email: string, password: string): Promise<Token> {
  const response = await fetch(`${base}/api/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email, password }),
  });
  return (await response.json()) as Token;
}

export async function updateProfile(base: string, token: string, update: ProfileUpdate): Promise<ProfileOut> {
  const response = await fetch(`${base}/api/profiles/me`, {
    method: "PUT",
    headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
    body: JSON.stringify(update),
  });
  return (await response.json()) as ProfileOut;
}

// openapi-fetch over the generated paths: every documented error is part of `error`'s type,
// so a login's 403 (a second factor is due, or the account is disabled) is handled by type.
export async function loginOrSecondFactor(
  base: string,
  email: string,
  password: string,
): Promise<{ token: Token } | { mfaToken: string } | { refused: string }> {
  const client = createClient<paths>({ baseUrl: base });
  const { data, error, response } = await client.POST("/api/auth/login", { body: { email, password } });
  if (data) return { token: data };
  if (response.status === 403 && "mfa_token" in error && error.mfa_token) return { mfaToken: error.mfa_token };
  // A 422 (JSON of the wrong type) carries a list of problems instead of a sentence.
  return { refused: typeof error.detail === "string" ? error.detail : error.detail[0].msg };
}
