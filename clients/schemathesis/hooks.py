"""Schemathesis hooks for clients/run-schemathesis: a signed-in admin for every request.

Fuzzed requests may end the session (a session list's DELETE, an email change), change the
account or delete it. The auth provider signs in again on any 401, and when the account can
no longer sign in it creates a new admin with the server's own `create-admin` command.
"""
import itertools
import json
import os
import subprocess
import urllib.error
import urllib.request

import schemathesis

BASE_URL = os.environ["BASE_URL"]
PASSWORD = "Fuzz-Admin-Pass-1"
_admins = itertools.count(1)
_email = None


def _login(email):
    request = urllib.request.Request(
        f"{BASE_URL}/api/auth/login",
        data=json.dumps({"email": email, "password": PASSWORD}).encode(),
        headers={"content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request) as response:
            return json.load(response)["access_token"]
    except urllib.error.HTTPError:
        return None


def _new_admin():
    email = f"fuzz-admin-{os.getpid()}-{next(_admins)}@example.com"
    subprocess.run(
        [os.environ["SERVER_BINARY"], "create-admin", "--email", email],
        input=PASSWORD.encode(),
        check=True,
        capture_output=True,
    )
    return email


@schemathesis.auth(refresh_interval=600)
class Admin:
    def get(self, case, context):
        global _email
        token = _login(_email) if _email else None
        if token is None:
            _email = _new_admin()
            token = _login(_email)
        return token

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
