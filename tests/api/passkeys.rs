//! Passkeys (SPEC §15) on both APIs and both databases, against a software authenticator
//! written here from the WebAuthn and CTAP2 texts (P-256 keys by `ring`, CBOR by hand), so
//! that the server is checked by an implementation that is not its own library.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use reqwest::StatusCode;
use ring::{
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair},
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    admin::signed_in_admin,
    helpers::{PASSWORD, TestApp, body, decode_claims, expect_error},
    on_both_backends, on_both_backends_with,
    process::ServerProcess,
};

on_both_backends!(
    a_passkey_is_added_and_signs_in_over_rest,
    a_passkey_is_added_and_signs_in_over_graphql,
    ceremonies_are_single_use_and_bound_to_their_origin,
    a_cloned_key_and_a_disabled_account_are_refused,
    a_ceremony_started_on_one_replica_finishes_on_another,
    an_ed25519_passkey_works_as_well,
    an_account_keeps_few_pending_ceremonies,
);
on_both_backends_with!(three_per_minute; passkey_sign_ins_count_toward_the_address_limit);

fn three_per_minute() -> Vec<(&'static str, &'static str)> {
    vec![("LOGIN_PER_IP_PER_MINUTE", "3")]
}

/// The origin the test server accepts by default (`PUBLIC_URL` unset: port 8000, and
/// `localhost` as the RP id, since browsers refuse an IP address).
const ORIGIN: &str = "http://localhost:8000";

/// A credential's private key: ES256 (P-256) or EdDSA (Ed25519).
enum PrivateKey {
    Es256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl PrivateKey {
    fn es256() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        Self::Es256(
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
                .unwrap(),
        )
    }

    fn ed25519() -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Self::Ed25519(Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap())
    }

    /// The public key as a COSE_Key.
    fn cose(&self) -> Vec<u8> {
        let mut cose = Vec::new();
        match self {
            Self::Es256(key) => {
                let point = key.public_key().as_ref();
                cbor_head(5, 5, &mut cose);
                for (label, value) in [(1, 2), (3, -7), (-1, 1)] {
                    cbor_int(label, &mut cose);
                    cbor_int(value, &mut cose);
                }
                cbor_int(-2, &mut cose);
                cbor_bytes(&point[1..33], &mut cose);
                cbor_int(-3, &mut cose);
                cbor_bytes(&point[33..65], &mut cose);
            }
            Self::Ed25519(key) => {
                cbor_head(5, 4, &mut cose);
                for (label, value) in [(1, 1), (3, -8), (-1, 6)] {
                    cbor_int(label, &mut cose);
                    cbor_int(value, &mut cose);
                }
                cbor_int(-2, &mut cose);
                cbor_bytes(key.public_key().as_ref(), &mut cose);
            }
        }
        cose
    }

    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Self::Es256(key) => key
                .sign(&SystemRandom::new(), message)
                .unwrap()
                .as_ref()
                .to_vec(),
            Self::Ed25519(key) => key.sign(message).as_ref().to_vec(),
        }
    }
}

/// A software authenticator holding one discoverable credential.
struct SoftKey {
    key: PrivateKey,
    id: Vec<u8>,
    user_handle: Vec<u8>,
    rp_id: String,
    counter: u32,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The CBOR head of major type `major` with argument `n`.
fn cbor_head(major: u8, n: u64, out: &mut Vec<u8>) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend([m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend((n as u16).to_be_bytes());
        }
        _ => {
            out.push(m | 26);
            out.extend((n as u32).to_be_bytes());
        }
    }
}

fn cbor_int(i: i64, out: &mut Vec<u8>) {
    if i >= 0 {
        cbor_head(0, i as u64, out)
    } else {
        cbor_head(1, (-1 - i) as u64, out)
    }
}

fn cbor_bytes(b: &[u8], out: &mut Vec<u8>) {
    cbor_head(2, b.len() as u64, out);
    out.extend(b);
}

fn cbor_text(t: &str, out: &mut Vec<u8>) {
    cbor_head(3, t.len() as u64, out);
    out.extend(t.as_bytes());
}

impl SoftKey {
    /// `navigator.credentials.create()` for `options` (`{"publicKey": …}`) from `origin`:
    /// the key and `credential.toJSON()`.
    fn create(options: &Value, origin: &str) -> (Self, Value) {
        Self::create_with(PrivateKey::es256(), options, origin)
    }

    fn create_with(key: PrivateKey, options: &Value, origin: &str) -> (Self, Value) {
        let public_key = &options["publicKey"];
        assert_eq!(
            public_key["authenticatorSelection"]["residentKey"],
            "required"
        );
        assert_eq!(
            public_key["authenticatorSelection"]["userVerification"],
            "required"
        );
        assert_eq!(public_key["attestation"], "none");
        let id: Vec<u8> = (0..16).map(|_| rand_byte()).collect();
        let rp_id = public_key["rp"]["id"].as_str().unwrap().to_owned();
        let user_handle = URL_SAFE_NO_PAD
            .decode(public_key["user"]["id"].as_str().unwrap())
            .unwrap();
        let cose = key.cose();
        let mut auth_data = Sha256::digest(rp_id.as_bytes()).to_vec();
        auth_data.push(0x45); // user present, user verified, attested credential data
        auth_data.extend(0u32.to_be_bytes());
        auth_data.extend([0u8; 16]); // AAGUID
        auth_data.extend((id.len() as u16).to_be_bytes());
        auth_data.extend(&id);
        auth_data.extend(cose);
        let mut attestation = Vec::new();
        cbor_head(5, 3, &mut attestation);
        cbor_text("fmt", &mut attestation);
        cbor_text("none", &mut attestation);
        cbor_text("attStmt", &mut attestation);
        cbor_head(5, 0, &mut attestation);
        cbor_text("authData", &mut attestation);
        cbor_bytes(&auth_data, &mut attestation);
        let client_data = json!({
            "type": "webauthn.create",
            "challenge": public_key["challenge"],
            "origin": origin,
            "crossOrigin": false,
        })
        .to_string();
        let credential = json!({
            "id": b64(&id),
            "rawId": b64(&id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(client_data.as_bytes()),
                "attestationObject": b64(&attestation),
            },
            "clientExtensionResults": {},
        });
        let key = Self {
            key,
            id,
            user_handle,
            rp_id,
            counter: 0,
        };
        (key, credential)
    }

    /// `navigator.credentials.get()` for `options` from `origin`: `credential.toJSON()`.
    fn assert(&mut self, options: &Value, origin: &str) -> Value {
        let public_key = &options["publicKey"];
        assert!(
            public_key
                .get("allowCredentials")
                .is_none_or(|a| a.as_array().is_some_and(Vec::is_empty))
        );
        assert_eq!(public_key["userVerification"], "required");
        assert_eq!(public_key["rpId"], self.rp_id.as_str());
        self.counter += 1;
        let mut auth_data = Sha256::digest(self.rp_id.as_bytes()).to_vec();
        auth_data.push(0x05); // user present, user verified
        auth_data.extend(self.counter.to_be_bytes());
        let client_data = json!({
            "type": "webauthn.get",
            "challenge": public_key["challenge"],
            "origin": origin,
            "crossOrigin": false,
        })
        .to_string();
        let mut signed = auth_data.clone();
        signed.extend(Sha256::digest(client_data.as_bytes()));
        let signature = self.key.sign(&signed);
        json!({
            "id": b64(&self.id),
            "rawId": b64(&self.id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(client_data.as_bytes()),
                "authenticatorData": b64(&auth_data),
                "signature": b64(&signature),
                "userHandle": b64(&self.user_handle),
            },
            "clientExtensionResults": {},
        })
    }
}

fn rand_byte() -> u8 {
    let mut b = [0u8; 1];
    ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut b).unwrap();
    b[0]
}

async fn post(app: &TestApp, path: &str, token: Option<&str>, json: Value) -> reqwest::Response {
    let mut request = app.client.post(app.url(path)).json(&json);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

async fn signed_up(app: &TestApp, email: &str) -> String {
    assert_eq!(
        app.register(email, PASSWORD).await.status(),
        StatusCode::CREATED
    );
    app.tokens(email).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Adds a passkey to the account of `token` over REST: the key and the answer.
async fn added(app: &TestApp, token: &str, name: Option<&str>) -> (SoftKey, Value) {
    let options = body(
        post(
            app,
            "/api/users/me/passkeys/options",
            Some(token),
            json!({}),
        )
        .await,
    )
    .await;
    let (key, credential) = SoftKey::create(&options["options"], ORIGIN);
    let added = post(
        app,
        "/api/users/me/passkeys",
        Some(token),
        json!({"flow_id": options["flow_id"], "credential": credential, "name": name}),
    )
    .await;
    assert_eq!(added.status(), StatusCode::CREATED);
    (key, body(added).await)
}

/// A passkey sign-in over REST: the answer.
async fn sign_in(app: &TestApp, key: &mut SoftKey) -> reqwest::Response {
    let options = body(post(app, "/api/auth/passkey/options", None, json!({})).await).await;
    let credential = key.assert(&options["options"], ORIGIN);
    post(
        app,
        "/api/auth/passkey/verify",
        None,
        json!({"flow_id": options["flow_id"], "credential": credential}),
    )
    .await
}

async fn a_passkey_is_added_and_signs_in_over_rest(app: TestApp) {
    let email = "key@example.com";
    let token = signed_up(&app, email).await;
    let options = body(
        post(
            &app,
            "/api/users/me/passkeys/options",
            Some(&token),
            json!({}),
        )
        .await,
    )
    .await;
    assert!(options["flow_id"].is_string());
    assert_eq!(options["options"]["publicKey"]["rp"]["id"], "localhost");
    let (mut key, passkey) = added(&app, &token, Some("Laptop")).await;
    let keys: Vec<&str> = passkey
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["id", "name", "created_at", "last_used_at"]);
    assert_eq!(passkey["name"], "Laptop");
    assert_eq!(passkey["last_used_at"], Value::Null);
    // A second ceremony excludes the first passkey.
    let again = body(
        post(
            &app,
            "/api/users/me/passkeys/options",
            Some(&token),
            json!({}),
        )
        .await,
    )
    .await;
    let excluded = again["options"]["publicKey"]["excludeCredentials"].to_string();
    assert!(excluded.contains(&b64(&key.id)), "{excluded}");
    let (_, unnamed) = added(&app, &token, None).await;
    assert_eq!(unnamed["name"], "Passkey");
    // The owner hears of every passkey added (after the verification message).
    let mails = app.mail_to(email, 3).await;
    assert_eq!(mails.len(), 3);
    assert!(
        mails[1..]
            .iter()
            .all(|m| m.contains("Subject: A passkey was added to your account"))
    );

    let signed_in = sign_in(&app, &mut key).await;
    assert_eq!(signed_in.status(), StatusCode::OK);
    let tokens = body(signed_in).await;
    assert_eq!(
        decode_claims(tokens["access_token"].as_str().unwrap())["amr"],
        json!(["passkey"])
    );
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(body(app.account(access).await).await["email"], email);
    let list = body(app.get_auth("/api/users/me/passkeys", &token).await).await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    let laptop = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "Laptop")
        .unwrap();
    assert!(laptop["last_used_at"].is_string());
    assert_eq!(
        body(app.get_auth("/api/users/me/mfa", &token).await).await["passkeys"],
        2
    );
    // Signing in again moves the counter on; it works as often as wanted.
    assert_eq!(sign_in(&app, &mut key).await.status(), StatusCode::OK);

    // Removed: it signs in no more; another's or unknown id → 404.
    let other = signed_up(&app, "other@example.com").await;
    let id = laptop["id"].as_str().unwrap();
    expect_error(
        app.delete_auth(&format!("/api/users/me/passkeys/{id}"), &other)
            .await,
        StatusCode::NOT_FOUND,
        "Passkey not found",
    )
    .await;
    assert_eq!(
        app.delete_auth(&format!("/api/users/me/passkeys/{id}"), &token)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    expect_error(
        sign_in(&app, &mut key).await,
        StatusCode::UNAUTHORIZED,
        "Passkey not recognised",
    )
    .await;
    let events = body(
        app.get_auth("/api/users/me/security-events?limit=100", &token)
            .await,
    )
    .await
    .to_string();
    assert!(events.contains("passkey_added") && events.contains("passkey_removed"));
}

async fn a_passkey_is_added_and_signs_in_over_graphql(app: TestApp) {
    let email = "gkey@example.com";
    let token = signed_up(&app, email).await;
    let started = app
        .graphql(
            Some(&token),
            "mutation { startPasskeyRegistration { flowId options } }",
            json!({}),
        )
        .await;
    let started = &started["data"]["startPasskeyRegistration"];
    let (mut key, credential) = SoftKey::create(&started["options"], ORIGIN);
    let finished = app
        .graphql(
            Some(&token),
            "mutation($i: FinishPasskeyRegistrationInput!) { finishPasskeyRegistration(input: $i) { id name lastUsedAt } }",
            json!({"i": {"flowId": started["flowId"], "credential": credential, "name": "Phone"}}),
        )
        .await;
    assert_eq!(
        finished["data"]["finishPasskeyRegistration"]["name"], "Phone",
        "{finished}"
    );
    let mine = app
        .graphql(
            Some(&token),
            "{ myPasskeys { id name } myMfa { passkeys } }",
            json!({}),
        )
        .await;
    assert_eq!(mine["data"]["myPasskeys"][0]["name"], "Phone");
    assert_eq!(mine["data"]["myMfa"]["passkeys"], 1);

    let options = app
        .graphql(
            None,
            "mutation { startPasskeySignIn { flowId options } }",
            json!({}),
        )
        .await;
    let options = &options["data"]["startPasskeySignIn"];
    assert!(options["options"].get("mediation").is_none());
    let assertion = key.assert(&options["options"], ORIGIN);
    let signed_in = app
        .graphql(
            None,
            "mutation($i: FinishPasskeySignInInput!) { finishPasskeySignIn(input: $i) { accessToken user { email } } }",
            json!({"i": {"flowId": options["flowId"], "credential": assertion}}),
        )
        .await;
    assert_eq!(
        signed_in["data"]["finishPasskeySignIn"]["user"]["email"], email,
        "{signed_in}"
    );
    let id = mine["data"]["myPasskeys"][0]["id"].clone();
    let deleted = app
        .graphql(
            Some(&token),
            "mutation($id: ID!) { deletePasskey(id: $id) }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(deleted["data"]["deletePasskey"], true);
    let again = app
        .graphql(
            Some(&token),
            "mutation($id: ID!) { deletePasskey(id: $id) }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(again["errors"][0]["extensions"]["code"], "NOT_FOUND");
}

async fn ceremonies_are_single_use_and_bound_to_their_origin(app: TestApp) {
    let token = signed_up(&app, "cer@example.com").await;
    // A credential made for another origin does not verify.
    let options = body(
        post(
            &app,
            "/api/users/me/passkeys/options",
            Some(&token),
            json!({}),
        )
        .await,
    )
    .await;
    let (_, forged) = SoftKey::create(&options["options"], "http://evil.example:8000");
    let refused = expect_error(
        post(
            &app,
            "/api/users/me/passkeys",
            Some(&token),
            json!({"flow_id": options["flow_id"], "credential": forged}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "Passkey could not be verified.",
    )
    .await;
    assert_eq!(refused["errors"][0]["field"], "credential");
    // The failed finish spent the ceremony: a right credential for it is refused too.
    let (_, right) = SoftKey::create(&options["options"], ORIGIN);
    expect_error(
        post(
            &app,
            "/api/users/me/passkeys",
            Some(&token),
            json!({"flow_id": options["flow_id"], "credential": right}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "Passkey could not be verified.",
    )
    .await;
    let missing = expect_error(
        post(&app, "/api/users/me/passkeys", Some(&token), json!({})).await,
        StatusCode::BAD_REQUEST,
        "Flow id is required.",
    )
    .await;
    assert_eq!(missing["errors"].as_array().unwrap().len(), 2);
    assert_eq!(app.count("SELECT COUNT(*) FROM passkeys").await, 0);

    let (mut key, _) = added(&app, &token, None).await;
    // A sign-in ceremony works once: the same assertion twice, or another origin, is refused.
    let options = body(post(&app, "/api/auth/passkey/options", None, json!({})).await).await;
    let assertion = key.assert(&options["options"], ORIGIN);
    let send = |credential: Value| {
        post(
            &app,
            "/api/auth/passkey/verify",
            None,
            json!({"flow_id": options["flow_id"], "credential": credential}),
        )
    };
    assert_eq!(send(assertion.clone()).await.status(), StatusCode::OK);
    expect_error(
        send(assertion).await,
        StatusCode::UNAUTHORIZED,
        "Passkey not recognised",
    )
    .await;
    let options = body(post(&app, "/api/auth/passkey/options", None, json!({})).await).await;
    let elsewhere = key.assert(&options["options"], "http://evil.example:8000");
    expect_error(
        post(
            &app,
            "/api/auth/passkey/verify",
            None,
            json!({"flow_id": options["flow_id"], "credential": elsewhere}),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "Passkey not recognised",
    )
    .await;
    // An assertion for another RP id (a phishing site's) is refused.
    let options = body(post(&app, "/api/auth/passkey/options", None, json!({})).await).await;
    let mut options_elsewhere = options["options"].clone();
    options_elsewhere["publicKey"]["rpId"] = json!("evil.example");
    let real_rp = std::mem::replace(&mut key.rp_id, "evil.example".into());
    let phished = key.assert(&options_elsewhere, ORIGIN);
    key.rp_id = real_rp;
    expect_error(
        post(
            &app,
            "/api/auth/passkey/verify",
            None,
            json!({"flow_id": options["flow_id"], "credential": phished}),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "Passkey not recognised",
    )
    .await;
    // An expired ceremony is refused.
    let options = body(post(&app, "/api/auth/passkey/options", None, json!({})).await).await;
    app.execute("UPDATE webauthn_flows SET expires_at = created_at")
        .await;
    let late = key.assert(&options["options"], ORIGIN);
    expect_error(
        post(
            &app,
            "/api/auth/passkey/verify",
            None,
            json!({"flow_id": options["flow_id"], "credential": late}),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "Passkey not recognised",
    )
    .await;
}

async fn a_cloned_key_and_a_disabled_account_are_refused(app: TestApp) {
    let (_, admin) = signed_in_admin(&app).await;
    let token = signed_up(&app, "clone@example.com").await;
    let id = body(app.account(&token).await).await["id"]
        .as_i64()
        .unwrap();
    let (mut key, _) = added(&app, &token, None).await;
    assert_eq!(sign_in(&app, &mut key).await.status(), StatusCode::OK);
    assert_eq!(sign_in(&app, &mut key).await.status(), StatusCode::OK);
    // A copy of the key whose counter is behind: a clone.
    key.counter = 0;
    expect_error(
        sign_in(&app, &mut key).await,
        StatusCode::UNAUTHORIZED,
        "Passkey not recognised",
    )
    .await;
    key.counter = 10;
    assert_eq!(sign_in(&app, &mut key).await.status(), StatusCode::OK);
    // Disabled: 403; an admin's MFA reset removes the passkeys.
    let disabled = app
        .client
        .post(app.url(&format!("/api/admin/users/{id}/disable")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(disabled.status(), StatusCode::OK);
    expect_error(
        sign_in(&app, &mut key).await,
        StatusCode::FORBIDDEN,
        "Account disabled",
    )
    .await;
    let reset = app
        .client
        .post(app.url(&format!("/api/admin/users/{id}/mfa/reset")))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.count("SELECT COUNT(*) FROM passkeys").await, 0);
}

async fn a_ceremony_started_on_one_replica_finishes_on_another(app: TestApp) {
    let replica = ServerProcess::start(&[("DATABASE_URL", app.database_url.as_str())]);
    let token = signed_up(&app, "replica@example.com").await;
    let options = body(
        post(
            &app,
            "/api/users/me/passkeys/options",
            Some(&token),
            json!({}),
        )
        .await,
    )
    .await;
    let (mut key, credential) = SoftKey::create(&options["options"], ORIGIN);
    let added = app
        .client
        .post(replica.url("/api/users/me/passkeys"))
        .bearer_auth(&token)
        .json(&json!({"flow_id": options["flow_id"], "credential": credential}))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::CREATED);
    // And a sign-in started on the replica finishes here.
    let options = body(
        app.client
            .post(replica.url("/api/auth/passkey/options"))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let assertion = key.assert(&options["options"], ORIGIN);
    let signed_in = post(
        &app,
        "/api/auth/passkey/verify",
        None,
        json!({"flow_id": options["flow_id"], "credential": assertion}),
    )
    .await;
    assert_eq!(signed_in.status(), StatusCode::OK);
}

async fn passkey_sign_ins_count_toward_the_address_limit(app: TestApp) {
    let token = signed_up(&app, "limit@example.com").await;
    // The sign-up's login was the first attempt of the minute.
    let _ = token;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(
            post(&app, "/api/auth/passkey/options", None, json!({}))
                .await
                .status(),
        );
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    let refused = post(
        &app,
        "/api/auth/passkey/verify",
        None,
        json!({"flow_id": "x", "credential": {"id": "x"}}),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().contains_key("retry-after"));
}

async fn an_ed25519_passkey_works_as_well(app: TestApp) {
    let token = signed_up(&app, "ed@example.com").await;
    let options = body(
        post(
            &app,
            "/api/users/me/passkeys/options",
            Some(&token),
            json!({}),
        )
        .await,
    )
    .await;
    let algorithms: Vec<i64> = options["options"]["publicKey"]["pubKeyCredParams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["alg"].as_i64().unwrap())
        .collect();
    assert!(
        algorithms.contains(&-7) && algorithms.contains(&-8),
        "{algorithms:?}"
    );
    let (mut key, credential) =
        SoftKey::create_with(PrivateKey::ed25519(), &options["options"], ORIGIN);
    let added = post(
        &app,
        "/api/users/me/passkeys",
        Some(&token),
        json!({"flow_id": options["flow_id"], "credential": credential}),
    )
    .await;
    assert_eq!(added.status(), StatusCode::CREATED);
    assert_eq!(sign_in(&app, &mut key).await.status(), StatusCode::OK);
}

async fn an_account_keeps_few_pending_ceremonies(app: TestApp) {
    let token = signed_up(&app, "pending@example.com").await;
    let starts = (0..30).map(|_| {
        post(
            &app,
            "/api/users/me/passkeys/options",
            Some(&token),
            json!({}),
        )
    });
    let answers = futures_util::future::join_all(starts).await;
    assert!(answers.iter().all(|r| r.status() == StatusCode::OK));
    // However many start at once, a handful stay (each start trims to the newest few, under the account's lock).
    let pending = app.count("SELECT COUNT(*) FROM webauthn_flows").await;
    assert!(pending <= 5, "{pending} pending");
    // The newest still finishes.
    let (_, added) = added(&app, &token, None).await;
    assert_eq!(added["name"], "Passkey");
    assert!(app.count("SELECT COUNT(*) FROM webauthn_flows").await <= 5);
}
