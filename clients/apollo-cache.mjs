// Apollo Client 4 with its default InMemoryCache (and apollo-upload-client for the photo),
// against a running server at BASE_URL. After every step, each query the app has cached must
// read from the cache exactly as a fresh network read answers it: one row is one cache
// entity, and every mutation returns what it changed.
import { ApolloClient, InMemoryCache, gql } from "@apollo/client";
import UploadHttpLink from "apollo-upload-client/UploadHttpLink.mjs";
import { png } from "./png.mjs";
import assert from "node:assert/strict";

const uri = `${process.env.BASE_URL ?? "http://127.0.0.1:8000"}/graphql`;
let token = null;
const link = () =>
  new UploadHttpLink({ uri, fetch: (url, init) => fetch(url, withAuth(init)) });
const withAuth = (init) => ({
  ...init,
  headers: { ...init.headers, ...(token ? { authorization: `Bearer ${token}` } : {}) },
});
const client = new ApolloClient({ link: link(), cache: new InMemoryCache() });
// A second client with no cache of its own: the "fresh network read".
const network = new ApolloClient({ link: link(), cache: new InMemoryCache(), defaultOptions: { query: { fetchPolicy: "no-cache" } } });

const PROFILE_FIELDS = "id userId email name bio phone profilePhotoPath updatedAt user { id name updatedAt }";
const ME = gql`query Me { me { id email name updatedAt profile { id name bio profilePhotoPath updatedAt } } }`;
const MY_PROFILE = gql`query MyProfile { myProfile { ${PROFILE_FIELDS} } }`;
const PROFILE = gql`query Profile($userId: Int!) { profile(userId: $userId) { ${PROFILE_FIELDS} } }`;
const SESSIONS = gql`query Sessions { mySessions { id current createdAt lastUsedAt expiresAt userAgent ip } }`;
const LOGIN = gql`mutation Login($i: LoginInput!) { login(input: $i) { accessToken user { id email name updatedAt } } }`;

let userId = null;
const queries = () => [
  { query: ME },
  { query: MY_PROFILE },
  { query: PROFILE, variables: { userId } },
  { query: SESSIONS },
];

/** Every query the cache can answer reads as the server answers it now. */
async function cacheMatchesNetwork(step) {
  let compared = 0;
  for (const q of queries()) {
    const cached = client.cache.readQuery(q);
    if (cached === null) continue;
    const fresh = await network.query(q).catch((e) => ({ data: null, error: e }));
    assert.deepEqual(cached, fresh.data, `${step}: the cache is stale for ${q.query.definitions[0].name.value}`);
    compared += 1;
  }
  console.log(`${step}: ${compared} cached queries match the server`);
}

const email = `apollo-${Date.now()}@example.com`;
const password = "StrongPass123";
await network.mutate({
  mutation: gql`mutation Register($i: RegisterInput!) { register(input: $i) { id } }`,
  variables: { i: { email, password } },
});

const login = await client.mutate({ mutation: LOGIN, variables: { i: { email, password } } });
token = login.data.login.accessToken;
userId = login.data.login.user.id;
await cacheMatchesNetwork("login");

for (const q of queries().slice(0, 3)) await client.query(q);
await cacheMatchesNetwork("me, myProfile, profile(userId)");

await client.mutate({
  mutation: gql`mutation UpdateMe($i: UpdateMeInput!) { updateMe(input: $i) { id email name updatedAt profile { id name updatedAt } } }`,
  variables: { i: { name: "Ada" } },
});
await cacheMatchesNetwork("updateMe");

await client.mutate({
  mutation: gql`mutation UpdateProfile($i: ProfileInput!) { updateProfile(input: $i) { ${PROFILE_FIELDS} } }`,
  variables: { i: { name: "Ada L", bio: "Counting engines", phone: "+100200300" } },
});
await cacheMatchesNetwork("updateProfile");

await client.query({ query: PROFILE, variables: { userId }, fetchPolicy: "network-only" });
await cacheMatchesNetwork("profile(userId)");

const file = new File([png(10, 6)], "me.png", { type: "image/png" });
const uploaded = await client.mutate({
  mutation: gql`mutation Upload($file: Upload!) { uploadProfilePhoto(file: $file) { ${PROFILE_FIELDS} } }`,
  variables: { file },
});
assert.match(uploaded.data.uploadProfilePhoto.profilePhotoPath, /^uploads\/\d+\/[0-9a-f-]+\.png$/);
await cacheMatchesNetwork("uploadProfilePhoto");

await client.mutate({
  mutation: gql`mutation DeletePhoto { deleteProfilePhoto { ${PROFILE_FIELDS} } }`,
});
await cacheMatchesNetwork("deleteProfilePhoto");

// A deletion: evict the deleted row by the id the mutation returns, and read the account
// again (its name was the profile's).
await client.mutate({
  mutation: gql`mutation DeleteProfile { deleteProfile }`,
  update(cache, { data }) {
    cache.evict({ id: cache.identify({ __typename: "Profile", id: data.deleteProfile }) });
    cache.gc();
  },
  refetchQueries: [{ query: ME }],
  awaitRefetchQueries: true,
});
await cacheMatchesNetwork("deleteProfile");

// Sessions: a second login elsewhere, then this client ends it. Evicting the session is
// enough: the cache leaves dangling references out of lists.
await network.mutate({ mutation: LOGIN, variables: { i: { email, password } } });
const { data: { mySessions } } = await client.query({ query: SESSIONS, fetchPolicy: "network-only" });
assert.equal(mySessions.length, 2);
const otherId = mySessions.find((s) => !s.current).id;
await client.mutate({
  mutation: gql`mutation RevokeSession($id: ID!) { revokeSession(id: $id) }`,
  variables: { id: otherId },
  update(cache) {
    cache.evict({ id: cache.identify({ __typename: "Session", id: otherId }) });
    cache.gc();
  },
});
await cacheMatchesNetwork("revokeSession");

// A password change ends every other session: read the list again.
await network.mutate({ mutation: LOGIN, variables: { i: { email, password } } });
await client.query({ query: SESSIONS, fetchPolicy: "network-only" });
await client.mutate({
  mutation: gql`mutation ChangePassword($i: ChangePasswordInput!) { changePassword(input: $i) }`,
  variables: { i: { currentPassword: password, newPassword: "StrongPass456" } },
  refetchQueries: [{ query: SESSIONS }],
  awaitRefetchQueries: true,
});
await cacheMatchesNetwork("changePassword");
console.log("apollo client: every step kept the cache current");
