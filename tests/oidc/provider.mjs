// A real OpenID provider for the black-box tests: npm `oidc-provider` (OpenID certified),
// on 127.0.0.1, with a login page the tests fill in as a browser would (cookies included).
//
//   node provider.mjs <port>      prints "listening <issuer>" once it serves
//
// The test client: `nta-test` / `nta-test-secret`, a native client (RFC 8252: its loopback
// redirect URIs match on any port), for the provider names `test` and `other`.
//
// What the tests set, per account (so that tests running at once do not disturb each other):
//   POST /__test/accounts {sub, email, email_verified, name, tamper}
// `tamper` makes the token endpoint hand out a bad ID token for that account: `nonce`, `aud`,
// `iss` (re-signed with the provider's own key), `signature` (one byte of it changed),
// `none` (`alg: none`, no signature) or `key` (signed by a key the provider never published).
//
// The login page: GET /interaction/{uid} is a form; POST /interaction/{uid}/login with
// `login={sub}` signs that account in and grants the scopes asked for; POST
// /interaction/{uid}/abort answers `access_denied`.

import { createServer } from 'node:http';
import { generateKeyPair, exportJWK, SignJWT, decodeJwt, decodeProtectedHeader } from 'jose';
import Provider from 'oidc-provider';

const port = Number(process.argv[2] ?? 0);
const issuer = `http://127.0.0.1:${port}`;

const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const signing = { ...(await exportJWK(privateKey)), kid: 'test-key', alg: 'RS256', use: 'sig' };
const stranger = (await generateKeyPair('RS256', { extractable: true })).privateKey;

/** sub → { email, email_verified, name, tamper } */
const accounts = new Map();

const callbacks = ['test', 'other'].map((name) => `http://127.0.0.1/api/auth/oidc/${name}/callback`);

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'nta-test',
      client_secret: 'nta-test-secret',
      application_type: 'native',
      redirect_uris: callbacks,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    },
  ],
  jwks: { keys: [signing] },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  // The claims asked for by scope in the ID token too (as Google, Microsoft and Okta do);
  // the service also reads the userinfo endpoint when an ID token has no email.
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, sub) {
    const account = accounts.get(sub) ?? { email: `${sub}@provider.test`, email_verified: true };
    return {
      accountId: sub,
      async claims() {
        const claims = { sub, email: account.email, email_verified: account.email_verified };
        if (account.name !== undefined) claims.name = account.name;
        return claims;
      },
    };
  },
  renderError(ctx, out) {
    ctx.type = 'text/plain';
    ctx.body = `${out.error}: ${out.error_description ?? ''}`;
  },
});
// The provider runs behind nothing: plain HTTP on the loopback.
provider.proxy = false;

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

/** The ID token `token` made bad in the way `mode` says. */
async function tampered(token, mode) {
  const claims = decodeJwt(token);
  const header = decodeProtectedHeader(token);
  const sign = (payload, key = privateKey) =>
    new SignJWT(payload).setProtectedHeader({ alg: 'RS256', kid: header.kid }).sign(key);
  switch (mode) {
    case 'nonce':
      return sign({ ...claims, nonce: 'not-the-nonce' });
    case 'aud':
      return sign({ ...claims, aud: 'someone-else' });
    case 'iss':
      return sign({ ...claims, iss: 'http://127.0.0.1:1' });
    case 'key':
      return sign(claims, stranger);
    case 'signature': {
      const [h, p, s] = token.split('.');
      const flipped = (s[0] === 'A' ? 'B' : 'A') + s.slice(1);
      return `${h}.${p}.${flipped}`;
    }
    case 'none': {
      const h = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
      return `${h}.${token.split('.')[1]}.`;
    }
    default:
      return token;
  }
}

provider.use(async (ctx, next) => {
  if (ctx.method === 'POST' && ctx.path === '/__test/accounts') {
    const { sub, ...account } = JSON.parse(await readBody(ctx.req));
    accounts.set(sub, account);
    ctx.status = 204;
    return;
  }
  const interaction = ctx.path.match(/^\/interaction\/([^/]+)(?:\/(login|abort))?$/);
  if (interaction) {
    const [, uid, action] = interaction;
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    if (details.uid !== uid) ctx.throw(400, 'interaction mismatch');
    if (ctx.method === 'GET' && !action) {
      ctx.type = 'html';
      ctx.body = `<!doctype html><title>Sign in</title>
<form method="post" action="/interaction/${uid}/login"><input name="login"><button>Sign in</button></form>
<form method="post" action="/interaction/${uid}/abort"><button>Cancel</button></form>`;
      return;
    }
    if (ctx.method === 'POST' && action === 'login') {
      const login = new URLSearchParams(await readBody(ctx.req)).get('login');
      const grant = new provider.Grant({ accountId: login, clientId: details.params.client_id });
      grant.addOIDCScope(details.params.scope);
      const grantId = await grant.save();
      const to = await provider.interactionResult(ctx.req, ctx.res, {
        login: { accountId: login },
        consent: { grantId },
      });
      ctx.status = 303;
      ctx.redirect(to);
      return;
    }
    if (ctx.method === 'POST' && action === 'abort') {
      const to = await provider.interactionResult(ctx.req, ctx.res, {
        error: 'access_denied',
        error_description: 'The user declined',
      });
      ctx.status = 303;
      ctx.redirect(to);
      return;
    }
  }
  await next();
  if (ctx.path === '/token' && ctx.status === 200 && ctx.body?.id_token) {
    const sub = decodeJwt(ctx.body.id_token).sub;
    const mode = accounts.get(sub)?.tamper;
    if (mode) ctx.body = { ...ctx.body, id_token: await tampered(ctx.body.id_token, mode) };
  }
});

const server = createServer(provider.callback());
server.listen(port, '127.0.0.1', () => {
  console.log(`listening ${issuer}`);
});

// The tests hold this process's stdin: when they end, so does the provider.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
