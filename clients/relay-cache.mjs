// relay-runtime's store against a running server at BASE_URL, with the operations of
// relay/RelayWalk.js compiled by relay-compiler. After every step, each query the app holds
// must read from the store exactly as a fresh network read answers it.
//
// Ids are `Int` (SPEC), and a `User` and a `Profile` may share a number, so the store keys a
// record by its type and id (`getDataID`, docs/clients.md); Relay's default key (the bare
// `id`) refuses numbers. Deletions and session ends are the updaters the guide shows.
import RelayRuntime from "relay-runtime";
import assert from "node:assert/strict";
import { png } from "./png.mjs";
import RegisterMutation from "./relay/__generated__/RelayWalkRegisterMutation.graphql.js";
import LoginMutation from "./relay/__generated__/RelayWalkLoginMutation.graphql.js";
import MeQuery from "./relay/__generated__/RelayWalkMeQuery.graphql.js";
import MyProfileQuery from "./relay/__generated__/RelayWalkMyProfileQuery.graphql.js";
import ProfileQuery from "./relay/__generated__/RelayWalkProfileQuery.graphql.js";
import SessionsQuery from "./relay/__generated__/RelayWalkSessionsQuery.graphql.js";
import UpdateMeMutation from "./relay/__generated__/RelayWalkUpdateMeMutation.graphql.js";
import UpdateProfileMutation from "./relay/__generated__/RelayWalkUpdateProfileMutation.graphql.js";
import UploadMutation from "./relay/__generated__/RelayWalkUploadMutation.graphql.js";
import DeletePhotoMutation from "./relay/__generated__/RelayWalkDeletePhotoMutation.graphql.js";
import DeleteProfileMutation from "./relay/__generated__/RelayWalkDeleteProfileMutation.graphql.js";
import RevokeSessionMutation from "./relay/__generated__/RelayWalkRevokeSessionMutation.graphql.js";
import ChangePasswordMutation from "./relay/__generated__/RelayWalkChangePasswordMutation.graphql.js";

const { Environment, Network, RecordSource, Store, fetchQuery, commitMutation, createOperationDescriptor } =
  RelayRuntime;

const uri = `${process.env.BASE_URL ?? "http://127.0.0.1:8000"}/graphql`;
let token = null;

/** One GraphQL request: JSON, or the multipart request spec when there are files. */
async function post(text, variables, uploadables) {
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  let body;
  if (uploadables) {
    body = new FormData();
    const names = Object.keys(uploadables);
    const nulls = Object.fromEntries(names.map((n) => [n, null]));
    body.append("operations", JSON.stringify({ query: text, variables: { ...variables, ...nulls } }));
    body.append("map", JSON.stringify(Object.fromEntries(names.map((n, i) => [i, [`variables.${n}`]]))));
    names.forEach((n, i) => body.append(String(i), uploadables[n]));
  } else {
    headers["content-type"] = "application/json";
    body = JSON.stringify({ query: text, variables });
  }
  const response = await fetch(uri, { method: "POST", headers, body });
  return response.json();
}

const environment = new Environment({
  network: Network.create((params, variables, _cacheConfig, uploadables) =>
    post(params.text, variables, uploadables),
  ),
  store: new Store(new RecordSource()),
  getDataID: (value, typeName) => (value.id == null ? null : `${typeName}:${value.id}`),
});

// The queries the app has on screen: retained, so the store keeps them.
const held = [];
async function show(query, variables = {}) {
  const operation = createOperationDescriptor(query, variables);
  if (!held.some((h) => h.request.identifier === operation.request.identifier)) {
    environment.retain(operation);
    held.push(operation);
  }
  await fetchQuery(environment, query, variables, { fetchPolicy: "network-only" }).toPromise();
}

/** Every held query reads from the store as the server answers it now. */
async function storeMatchesNetwork(step) {
  for (const operation of held) {
    const snapshot = environment.lookup(operation.fragment);
    const name = operation.request.node.params.name;
    const fresh = await post(operation.request.node.params.text, operation.request.variables);
    // A root field that is now an error (NOT_FOUND on a deleted profile) reads as null.
    const expected = fresh.data ?? Object.fromEntries(Object.keys(snapshot.data ?? {}).map((k) => [k, null]));
    assert.equal(snapshot.isMissingData, false, `${step}: the store lacks data for ${name}`);
    assert.deepEqual(snapshot.data, expected, `${step}: the store is stale for ${name}`);
  }
  console.log(`${step}: ${held.length} held queries match the server`);
}

function mutate(mutation, variables, extra = {}) {
  return new Promise((resolve, reject) =>
    commitMutation(environment, {
      mutation,
      variables,
      ...extra,
      onCompleted: (data, errors) => (errors?.length ? reject(new Error(JSON.stringify(errors))) : resolve(data)),
      onError: reject,
    }),
  );
}

const email = `relay-${Date.now()}@example.com`;
const password = "StrongPass123";
await mutate(RegisterMutation, { i: { email, password } });
const login = await mutate(LoginMutation, { i: { email, password } });
token = login.login.accessToken;
const userId = login.login.user.id;

await show(MeQuery);
await show(MyProfileQuery);
await show(ProfileQuery, { userId });
await storeMatchesNetwork("login, me, myProfile, profile(userId)");

await mutate(UpdateMeMutation, { i: { name: "Ada" } });
await storeMatchesNetwork("updateMe");

await mutate(UpdateProfileMutation, { i: { name: "Ada L", bio: "Counting engines", phone: "+100200300" } });
await storeMatchesNetwork("updateProfile");

const uploaded = await mutate(UploadMutation, { file: null }, {
  uploadables: { file: new File([png(10, 6)], "me.png", { type: "image/png" }) },
});
assert.match(uploaded.uploadProfilePhoto.profilePhotoPath, /^uploads\/\d+\/[0-9a-f-]+\.png$/);
await storeMatchesNetwork("uploadProfilePhoto");

await mutate(DeletePhotoMutation, {});
await storeMatchesNetwork("deleteProfilePhoto");

// A deletion: delete the record by the id the mutation returns, and read the account again
// (its name was the profile's).
await mutate(DeleteProfileMutation, {}, {
  updater: (store, data) => store.delete(`Profile:${data.deleteProfile}`),
});
await show(MeQuery);
await storeMatchesNetwork("deleteProfile");

// Sessions: a second login elsewhere, then this client ends it.
await show(SessionsQuery);
const other = await post(LoginMutation.params.text, { i: { email, password } });
assert.ok(other.data.login.accessToken);
await show(SessionsQuery);
const sessions = environment.lookup(createOperationDescriptor(SessionsQuery, {}).fragment).data.mySessions;
assert.equal(sessions.length, 2);
const otherId = sessions.find((s) => !s.current).id;
await mutate(RevokeSessionMutation, { id: otherId }, {
  updater: (store) => {
    const root = store.getRoot();
    const left = root.getLinkedRecords("mySessions").filter((r) => r.getDataID() !== `Session:${otherId}`);
    root.setLinkedRecords(left, "mySessions");
    store.delete(`Session:${otherId}`);
  },
});
await storeMatchesNetwork("revokeSession");

// A password change ends every other session: read the list again.
await post(LoginMutation.params.text, { i: { email, password } });
await show(SessionsQuery);
await mutate(ChangePasswordMutation, { i: { currentPassword: password, newPassword: "StrongPass456" } });
await show(SessionsQuery);
await storeMatchesNetwork("changePassword");
console.log("relay-runtime: every step kept the store current");
