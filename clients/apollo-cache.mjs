// Apollo Client 4 with its default InMemoryCache (and apollo-upload-client for the photo),
// against a running server at BASE_URL. After every step, each query the app has cached must
// read from the cache exactly as a fresh network read answers it: one row is one cache
// entity, and every mutation returns what it changed.
import { ApolloClient, InMemoryCache, gql } from "@apollo/client";
import UploadHttpLink from "apollo-upload-client/UploadHttpLink.mjs";
import { deflateSync } from "node:zlib";
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

let userId = null;
const queries = () => [
  { query: ME },
  { query: MY_PROFILE },
  { query: PROFILE, variables: { userId } },
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

function png(width, height) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (bytes) => {
    let c = 0xffffffff;
    for (const b of bytes) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (kind, data) => {
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    out.write(kind, 4, "latin1");
    data.copy(out, 8);
    out.writeUInt32BE(crc(out.subarray(4, 8 + data.length)), 8 + data.length);
    return out;
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header.set([8, 2, 0, 0, 0], 8);
  const rows = Buffer.alloc((width * 3 + 1) * height, 90);
  for (let y = 0; y < height; y++) rows[y * (width * 3 + 1)] = 0;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", header),
    chunk("IDAT", deflateSync(rows)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

const email = `apollo-${Date.now()}@example.com`;
const password = "StrongPass123";
await network.mutate({
  mutation: gql`mutation Register($i: RegisterInput!) { register(input: $i) { id } }`,
  variables: { i: { email, password } },
});

const login = await client.mutate({
  mutation: gql`mutation Login($i: LoginInput!) { login(input: $i) { accessToken user { id email name updatedAt } } }`,
  variables: { i: { email, password } },
});
token = login.data.login.accessToken;
userId = login.data.login.user.id;
await cacheMatchesNetwork("login");

for (const q of queries()) await client.query(q);
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
console.log("apollo client: every step kept the cache current");
