// The passkey page (`/account/passkeys`): a working reference for front ends. It signs in
// with a passkey (no email typed: the browser offers this site's passkeys), and, once signed
// in with a password, adds one. Everything goes through the public API with the browser's
// WebAuthn JSON helpers; the token stays in this page's memory.
"use strict";

const $ = (id) => document.getElementById(id);
let token = null;

function say(text, state) {
  const status = $("status");
  status.textContent = text;
  status.dataset.state = state;
}

async function call(method, path, body) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = response.status === 204 ? null : await response.json();
  if (!response.ok) throw new Error(data && data.detail ? data.detail : `HTTP ${response.status}`);
  return data;
}

async function showAccount() {
  const me = await call("GET", "/api/users/profile");
  $("who").textContent = me.email;
  $("signed-out").hidden = true;
  $("signed-in").hidden = false;
  const passkeys = await call("GET", "/api/users/me/passkeys");
  const list = $("passkeys");
  list.replaceChildren(
    ...passkeys.map((p) => {
      const item = document.createElement("li");
      item.textContent = `${p.name} (added ${p.created_at.slice(0, 10)})`;
      return item;
    }),
  );
}

async function signInWithPassword(event) {
  event.preventDefault();
  try {
    const tokens = await call("POST", "/api/auth/login", {
      email: $("email").value,
      password: $("password").value,
    });
    token = tokens.access_token;
    await showAccount();
    say("Signed in with your password.", "success");
  } catch (error) {
    say(error.message, "error");
  }
}

async function signInWithPasskey() {
  try {
    const { flow_id, options } = await call("POST", "/api/auth/passkey/options", {});
    const credential = await navigator.credentials.get({
      publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options.publicKey),
    });
    const tokens = await call("POST", "/api/auth/passkey/verify", {
      flow_id,
      credential: credential.toJSON(),
    });
    token = tokens.access_token;
    await showAccount();
    say("Signed in with a passkey.", "success");
  } catch (error) {
    say(error.message, "error");
  }
}

async function addPasskey() {
  try {
    const { flow_id, options } = await call("POST", "/api/users/me/passkeys/options", {});
    const credential = await navigator.credentials.create({
      publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options.publicKey),
    });
    const added = await call("POST", "/api/users/me/passkeys", {
      flow_id,
      credential: credential.toJSON(),
      name: $("name").value || null,
    });
    await showAccount();
    say(`Passkey “${added.name}” added.`, "success");
  } catch (error) {
    say(error.message, "error");
  }
}

function signOut() {
  token = null;
  $("signed-in").hidden = true;
  $("signed-out").hidden = false;
  say("Signed out.", "form");
}

if (!window.PublicKeyCredential || !PublicKeyCredential.parseCreationOptionsFromJSON) {
  say("This browser cannot use passkeys.", "error");
}
$("password-form").addEventListener("submit", signInWithPassword);
$("passkey-sign-in").addEventListener("click", signInWithPasskey);
$("add-passkey").addEventListener("click", addPasskey);
$("sign-out").addEventListener("click", signOut);
