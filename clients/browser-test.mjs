// Headless Chromium against a running server: Swagger UI renders the operations, Authorize
// (the OAuth2 password flow) + "Try it out" on GET /api/users/me/profile answers 200,
// GraphiQL renders and runs a `me` query, and the links of real messages (read from the
// server's MAIL_DIR) open pages that verify the address and reset the password, after which
// the new password logs in; and the undo link of an email change made with a stolen token
// gives the account back (the thief's token dies, a reset link reaches the owner); and the
// passkey page adds a passkey with Chromium's virtual authenticator and signs in with it;
// and a page on another origin (FRONT_PORT, the server's CORS_ORIGINS) sends Apollo's
// headers and `X-Request-Id` and reads the headers our docs tell clients to read. No request
// may leave the machine: a page that needs the internet fails the test. Screenshots of every
// page state go to $SCREENSHOT_DIR.
//
//   BASE_URL=http://127.0.0.1:8000 FRONT_PORT=8001 SCREENSHOT_DIR=../target/screenshots MAIL_DIR=… node browser-test.mjs
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { chromium } from "playwright-core";

const base = process.env.BASE_URL ?? "http://127.0.0.1:8000";
const shots = process.env.SCREENSHOT_DIR ?? "../target/screenshots";
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
mkdirSync(shots, { recursive: true });

const mailDir = process.env.MAIL_DIR ?? "../data/mail";
// A front end on another origin: an empty page on another loopback port.
const front = `http://127.0.0.1:${process.env.FRONT_PORT ?? 8001}`;
const frontServer = createServer((_, response) => {
  response.writeHead(200, { "content-type": "text/html; charset=utf-8" });
  response.end("<!doctype html><title>Front end</title><h1>A front end on another origin</h1>");
});
await new Promise((resolve) => frontServer.listen(Number(new URL(front).port), "127.0.0.1", resolve));
const email = `browser-${Date.now()}@example.com`;
const password = "StrongPass123";
const newPassword = "EvenStronger456";

/// The first `${base}${path}?token=…` link in the newest of `count` messages to `email`
/// (quoted-printable undone), waiting for it to arrive.
async function linkFromMail(path, count) {
  for (let i = 0; i < 100; i++) {
    let files = [];
    try {
      files = readdirSync(mailDir).filter((f) => f.endsWith(".eml")).sort();
    } catch {}
    const messages = files
      .map((f) => readFileSync(`${mailDir}/${f}`, "utf8"))
      .filter((m) => m.split(/\r?\n/).some((line) => line.toLowerCase() === `to: ${email}`))
      .map((m) => m.replace(/=\r?\n/g, "").replace(/=([0-9A-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16))));
    if (messages.length >= count) {
      const text = messages[count - 1];
      const match = text.match(new RegExp(`${base}${path}\\?token=[A-Za-z0-9_-]+`));
      if (!match) throw new Error(`no ${path} link in message ${count}`);
      return match[0];
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`message ${count} to ${email} never arrived in ${mailDir}`);
}

async function register() {
  const response = await fetch(`${base}/api/auth/register`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email, password, name: "Browser" }),
  });
  if (response.status !== 201) throw new Error(`register: ${response.status} ${await response.text()}`);
}

async function login() {
  const response = await fetch(`${base}/api/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email, password }),
  });
  return (await response.json()).access_token;
}

function step(name) {
  console.log(`- ${name}`);
}

const browser = await chromium.launch({
  executablePath,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
let failed = false;
let page;
try {
  await register();
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  const outside = [];
  // Passkeys need a domain as the RP id (browsers refuse an IP address): the passkey page is
  // opened under `localhost`, the server's default RP id for a loopback PUBLIC_URL.
  const passkeyBase = base.replace("127.0.0.1", "localhost");
  await context.route("**/*", (route) => {
    const url = route.request().url();
    if ([base, passkeyBase, front, "data:"].some((allowed) => url.startsWith(allowed))) return route.continue();
    outside.push(url);
    return route.abort();
  });
  page = await context.newPage();
  page.on("pageerror", (error) => console.log(`  page error: ${error.message}`));
  // The pages run under a strict Content-Security-Policy: anything it blocks is a bug.
  const blocked = [];
  page.on("console", (message) => {
    if (message.type() === "error" && message.text().includes("Content Security Policy")) {
      blocked.push(message.text());
    }
  });

  step("Swagger UI renders the operation list");
  await page.goto(`${base}/docs/`);
  await page.waitForSelector(".opblock", { timeout: 20000 });
  const operations = await page.locator(".opblock-summary-path").allInnerTexts();
  for (const path of ["/api/auth/login", "/api/users/me/profile", "/api/profiles/me/photo"]) {
    if (!operations.some((text) => text.replace(/\u200b/g, "").includes(path))) {
      throw new Error(`Swagger UI does not list ${path}: ${operations.join(", ")}`);
    }
  }
  await page.screenshot({ path: `${shots}/docs.png`, fullPage: false });

  step("Authorize with the OAuth2 password flow");
  await page.click(".auth-wrapper .authorize");
  // The dialog holds one container per scheme; the OAuth2 one is titled by its name.
  const oauth = page.locator(".auth-container", { hasText: "oauth2" });
  await oauth.locator("#oauth_username").fill(email);
  await oauth.locator("#oauth_password").fill(password);
  await oauth.locator("button.authorize").click();
  await oauth.locator("button", { hasText: "Logout" }).waitFor({ timeout: 10000 });
  await page.screenshot({ path: `${shots}/docs-authorized.png` });
  await page.click(".dialog-ux .close-modal");

  step("Try it out: GET /api/users/me/profile answers 200");
  const operation = page.locator("#operations-profiles-getMyProfile");
  await operation.locator(".opblock-summary").click();
  const tryOut = operation.locator("button.try-out__btn");
  if ((await tryOut.count()) > 0 && (await tryOut.innerText()).includes("Try it out")) await tryOut.click();
  await operation.locator("button.execute").click();
  const status = operation.locator(".live-responses-table tr.response .response-col_status").first();
  await status.waitFor({ timeout: 10000 });
  const code = (await status.innerText()).trim();
  const responseBody = await operation.locator(".live-responses-table .microlight").first().innerText();
  await page.screenshot({ path: `${shots}/docs-try-it-out.png`, fullPage: true });
  if (code !== "200") throw new Error(`Try it out answered ${code}: ${responseBody}`);
  if (!responseBody.includes(email)) throw new Error(`unexpected profile: ${responseBody}`);

  step("GraphiQL renders and runs a `me` query");
  const token = await login();
  await page.goto(`${base}/graphql`);
  await page.waitForSelector(".graphiql-container", { timeout: 20000 });
  await page.getByText("Headers", { exact: true }).click();
  const headers = page.locator(".graphiql-editor-tool .graphiql-editor").last();
  await headers.click();
  await page.keyboard.type(`{"Authorization": "Bearer ${token}"}`);
  await page.click(".graphiql-execute-button");
  await page.waitForFunction(
    (expected) => document.querySelector(".result-window")?.textContent?.includes(expected),
    email,
    { timeout: 10000 },
  );
  await page.screenshot({ path: `${shots}/graphiql.png` });

  step("The link of the registration message confirms the address");
  const verifyLink = await linkFromMail("/account/verify-email", 1);
  await page.goto(verifyLink);
  await page.getByRole("button", { name: "Confirm my email address" }).waitFor();
  await page.screenshot({ path: `${shots}/verify-email-form.png` });
  await page.getByRole("button", { name: "Confirm my email address" }).click();
  await page.getByText("your email address is confirmed").waitFor({ timeout: 10000 });
  await page.screenshot({ path: `${shots}/verify-email-done.png` });
  await page.goto(verifyLink);
  await page.getByRole("button", { name: "Confirm my email address" }).click();
  await page.getByText("This link is invalid").waitFor({ timeout: 10000 });
  await page.screenshot({ path: `${shots}/verify-email-used.png` });

  step("The link of a reset message sets a new password");
  const forgot = await fetch(`${base}/api/auth/forgot-password`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email }),
  });
  if (forgot.status !== 202) throw new Error(`forgot-password: ${forgot.status}`);
  const resetLink = await linkFromMail("/account/reset-password", 2);
  await page.goto(resetLink);
  await page.locator("#new_password").waitFor();
  await page.screenshot({ path: `${shots}/reset-password-form.png` });
  await page.fill("#new_password", newPassword);
  await page.fill("#confirm_password", "Something-else-1");
  await page.getByRole("button", { name: "Set the new password" }).click();
  await page.getByText("The two passwords differ.").waitFor({ timeout: 10000 });
  await page.screenshot({ path: `${shots}/reset-password-mismatch.png` });
  await page.fill("#new_password", newPassword);
  await page.fill("#confirm_password", newPassword);
  await page.getByRole("button", { name: "Set the new password" }).click();
  await page.getByText("Your new password is set").waitFor({ timeout: 10000 });
  await page.screenshot({ path: `${shots}/reset-password-done.png` });
  const relogin = await fetch(`${base}/api/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email, password: newPassword }),
  });
  if (relogin.status !== 200) throw new Error(`login with the new password: ${relogin.status}`);
  const old = await fetch(`${base}/api/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email, password }),
  });
  if (old.status !== 401) throw new Error(`login with the old password: ${old.status}`);

  step("A thief with a stolen token moves the address; the owner's undo link takes it back");
  const stolen = await (await fetch(`${base}/api/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email, password: newPassword }),
  })).json();
  const thief = `thief-${Date.now()}@example.com`;
  const moved = await fetch(`${base}/api/users/profile`, {
    method: "PUT",
    headers: { "content-type": "application/json", authorization: `Bearer ${stolen.access_token}` },
    body: JSON.stringify({ email: thief }),
  });
  if (moved.status !== 200) throw new Error(`email change: ${moved.status}`);
  // Messages to the owner so far: verification, reset, and now the notice of the change.
  const undoLink = await linkFromMail("/account/undo-email-change", 3);
  await page.goto(undoLink);
  await page.getByRole("button", { name: "Put my email address back" }).waitFor();
  await page.screenshot({ path: `${shots}/undo-email-change-form.png` });
  await page.getByRole("button", { name: "Put my email address back" }).click();
  await page.getByText("Your email address is the account's again").waitFor({ timeout: 10000 });
  await page.screenshot({ path: `${shots}/undo-email-change-done.png` });
  const thiefSession = await fetch(`${base}/api/users/profile`, {
    headers: { authorization: `Bearer ${stolen.access_token}` },
  });
  if (thiefSession.status !== 401) throw new Error(`the thief's token after the undo: ${thiefSession.status}`);
  // The reset link sent to the restored address sets a password the owner alone knows.
  const ownerReset = await linkFromMail("/account/reset-password", 4);
  await page.goto(ownerReset);
  await page.fill("#new_password", "OwnerAgain789");
  await page.fill("#confirm_password", "OwnerAgain789");
  await page.getByRole("button", { name: "Set the new password" }).click();
  await page.getByText("Your new password is set").waitFor({ timeout: 10000 });
  const back = await fetch(`${base}/api/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email, password: "OwnerAgain789" }),
  });
  if (back.status !== 200) throw new Error(`the owner's login after the undo: ${back.status}`);
  const account = await (await fetch(`${base}/api/users/profile`, {
    headers: { authorization: `Bearer ${(await back.json()).access_token}` },
  })).json();
  if (account.email !== email || account.email_verified !== true) {
    throw new Error(`the restored account: ${JSON.stringify(account)}`);
  }

  step("passkeys: the page adds one with Chromium's virtual authenticator, then signs in with it");
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  await page.goto(`${passkeyBase}/account/passkeys`);
  await page.fill("#email", email);
  await page.fill("#password", "OwnerAgain789");
  await page.getByRole("button", { name: "Sign in with your password" }).click();
  await page.getByText("Signed in with your password.").waitFor({ timeout: 10000 });
  await page.fill("#name", "Virtual key");
  await page.getByRole("button", { name: "Add a passkey" }).click();
  await page.getByText("Passkey “Virtual key” added.").waitFor({ timeout: 10000 });
  await page.screenshot({ path: `${shots}/passkey-added.png`, fullPage: true });
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.getByRole("button", { name: "Sign in with a passkey" }).click();
  await page.getByText("Signed in with a passkey.").waitFor({ timeout: 10000 });
  const who = await page.textContent("#who");
  if (who !== email) throw new Error(`signed in with the passkey as ${who}`);
  await page.screenshot({ path: `${shots}/passkey-signed-in.png`, fullPage: true });

  step("a front end on another origin sends Apollo's headers and reads ours");
  await page.goto(`${front}/`);
  const seen = await page.evaluate(async ({ base, email }) => {
    const json = { "content-type": "application/json" };
    const login = await fetch(`${base}/api/auth/login`, {
      method: "POST",
      headers: json,
      body: JSON.stringify({ email, password: "OwnerAgain789" }),
    });
    const token = (await login.json()).access_token;
    const bearer = { authorization: `Bearer ${token}` };
    // What Apollo Client sends with `clientAwareness`, and apollo-upload-client's header.
    const graphql = await fetch(`${base}/graphql`, {
      method: "POST",
      headers: {
        ...json,
        ...bearer,
        accept: "application/graphql-response+json",
        "apollographql-client-name": "front-end",
        "apollographql-client-version": "1.0.0",
        "apollo-require-preflight": "true",
        "x-request-id": "front-end-request-1",
      },
      body: JSON.stringify({ query: "{ me { email } }" }),
    });
    const me = await graphql.json();
    const canvas = new OffscreenCanvas(8, 8);
    canvas.getContext("2d").fillRect(0, 0, 8, 8);
    const form = new FormData();
    form.append("file", await canvas.convertToBlob({ type: "image/png" }), "me.png");
    const uploaded = await fetch(`${base}/api/profiles/me/photo`, { method: "POST", headers: bearer, body: form });
    const photo = await fetch(`${base}/${(await uploaded.json()).profile_photo_path}`);
    const anonymous = await fetch(`${base}/api/users/profile`);
    // Registrations from one address until the limit answers 429.
    let limited = null;
    for (let i = 0; i < 5 && !limited; i++) {
      const response = await fetch(`${base}/api/auth/register`, {
        method: "POST",
        headers: json,
        body: JSON.stringify({ email: `front-${i}-${Date.now()}@example.com`, password: "StrongPass123" }),
      });
      if (response.status === 429) limited = response;
    }
    return {
      graphql: [graphql.status, graphql.headers.get("x-request-id"), me.data?.me?.email],
      photo: [uploaded.status, photo.status, photo.headers.get("etag")],
      anonymous: [anonymous.status, anonymous.headers.get("www-authenticate")],
      limited: limited && [limited.status, limited.headers.get("retry-after")],
    };
  }, { base, email });
  console.log(`  ${JSON.stringify(seen)}`);
  if (JSON.stringify(seen.graphql) !== JSON.stringify([200, "front-end-request-1", email])) {
    throw new Error(`GraphQL from another origin: ${JSON.stringify(seen.graphql)}`);
  }
  if (seen.photo[0] !== 200 || seen.photo[1] !== 200 || !/^"[^"]+"$/.test(seen.photo[2] ?? "")) {
    throw new Error(`the photo's ETag from another origin: ${JSON.stringify(seen.photo)}`);
  }
  if (JSON.stringify(seen.anonymous) !== JSON.stringify([401, "Bearer"])) {
    throw new Error(`WWW-Authenticate from another origin: ${JSON.stringify(seen.anonymous)}`);
  }
  if (!seen.limited || !(Number(seen.limited[1]) > 0)) {
    throw new Error(`Retry-After from another origin: ${JSON.stringify(seen.limited)}`);
  }
  await page.screenshot({ path: `${shots}/cross-origin.png` });

  if (outside.length > 0) throw new Error(`pages tried to reach the internet: ${outside.join(", ")}`);
  if (blocked.length > 0) throw new Error(`the CSP blocked: ${blocked.join("; ")}`);
  console.log("browser test passed");
} catch (error) {
  failed = true;
  console.error(`browser test failed: ${error.stack ?? error}`);
  await page?.screenshot({ path: `${shots}/failure.png`, fullPage: true }).catch(() => {});
} finally {
  await browser.close();
  frontServer.close();
}
process.exit(failed ? 1 : 0);
