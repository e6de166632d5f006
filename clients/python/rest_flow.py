"""Every REST flow through the client that openapi-python-client generates from openapi.json.

Run by `run-python-client` against a running server (BASE_URL). Each step checks the status
and that the body parsed as the type the document declares for it; any mismatch between the
document and the server fails here, as it would for a user of the generated client.
"""

import io
import os
import struct
import sys
import uuid
import zlib

from nta_user_svc_client import AuthenticatedClient, Client
from nta_user_svc_client.api.admin import disable_user, enable_user
from nta_user_svc_client.api.auth import (
    forgot_password,
    login,
    logout,
    logout_all,
    refresh,
    register,
    register_user,
    reset_password,
    token,
    verify_email,
)
from nta_user_svc_client.api.health import healthz, readyz
from nta_user_svc_client.api.photos import delete_my_photo, get_photo, upload_my_photo
from nta_user_svc_client.api.profiles import (
    create_profile,
    delete_my_profile,
    get_my_profile,
    get_public_profile,
    update_my_profile,
)
from nta_user_svc_client.api.sessions import list_my_sessions, revoke_my_session
from nta_user_svc_client.api.users import (
    change_my_password,
    delete_my_account,
    get_account,
    request_email_verification,
    update_account,
)
from nta_user_svc_client.models import (
    ChangePasswordBody,
    DeleteAccountBody,
    ErrorBody,
    ForgotBody,
    AdminUserOut,
    Health,
    LoginBody,
    LoginForm,
    LoginRefusedBody,
    ProfileBody,
    ProfileOut,
    ProfilePublic,
    RefreshBody,
    RegisterBody,
    ResetBody,
    SessionOut,
    Token,
    TokenBody,
    TypeErrorBody,
    UpdateAccountBody,
    UploadMyPhotoBody,
    UserCreated,
    UserOut,
    ValidationErrorBody,
)
from nta_user_svc_client.types import File

BASE = os.environ.get("BASE_URL", "http://127.0.0.1:8000")
PASSWORD = "StrongPass123"
steps = 0


def check(response, status, kind):
    """The response has `status` and its body parsed as `kind`; returns the parsed body."""
    global steps
    steps += 1
    assert response.status_code == status, (response.status_code, response.content)
    if kind is not None:
        assert isinstance(response.parsed, kind), (type(response.parsed), response.content)
    return response.parsed


def png(width, height):
    """A small valid PNG, made here."""
    rows = b"".join(
        b"\x00" + bytes(c for x in range(width) for c in ((x * 7) % 256, (y * 5) % 256, 128))
        for y in range(height)
    )

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def main():
    anonymous = Client(base_url=BASE, raise_on_unexpected_status=True)
    email = f"py-{uuid.uuid4().hex[:8]}@example.com"

    check(healthz.sync_detailed(client=anonymous), 200, Health)
    check(readyz.sync_detailed(client=anonymous), 200, Health)

    # Registration, both paths, and its documented errors.
    created = check(register.sync_detailed(client=anonymous, body=RegisterBody(email=email, password=PASSWORD)), 201, UserCreated)
    assert created.email == email
    check(register_user.sync_detailed(client=anonymous, body=RegisterBody(email="n" + email, password=PASSWORD, name="Nia")), 201, UserCreated)
    weak = check(register.sync_detailed(client=anonymous, body=RegisterBody(email="w" + email, password="short")), 400, ValidationErrorBody)
    assert weak.errors[0].field == "password"
    taken = check(register.sync_detailed(client=anonymous, body=RegisterBody(email=email.upper(), password=PASSWORD)), 409, ErrorBody)
    assert taken.detail == "Email already registered."

    # Login: JSON, the OAuth2 form, and wrong credentials.
    tok = check(login.sync_detailed(client=anonymous, body=LoginBody(email=email, password=PASSWORD)), 200, Token)
    assert tok.token_type == "bearer" and tok.expires_in > 0
    form = check(token.sync_detailed(client=anonymous, body=LoginForm(username=email, password=PASSWORD)), 200, Token)
    assert form.access_token
    wrong = check(login.sync_detailed(client=anonymous, body=LoginBody(email=email, password="Wrong-pass-1")), 401, ErrorBody)
    assert wrong.detail == "Incorrect email or password"

    client = AuthenticatedClient(base_url=BASE, token=tok.access_token, raise_on_unexpected_status=True)
    check(get_account.sync_detailed(client=anonymous), 401, ErrorBody)

    # The account view.
    account = check(get_account.sync_detailed(client=client), 200, UserOut)
    assert account.email == email and account.name is None and account.email_verified is False

    # Email verification: a bad token, and a new message.
    bad = check(verify_email.sync_detailed(client=anonymous, body=TokenBody(token="made-up")), 400, ValidationErrorBody)
    assert bad.errors[0].field == "token"
    sent = check(request_email_verification.sync_detailed(client=client), 202, ErrorBody)
    assert sent.detail == "A verification message has been sent."
    for anyone in (email, "nobody-" + email):
        asked = check(forgot_password.sync_detailed(client=anonymous, body=ForgotBody(email=anyone)), 202, ErrorBody)
        assert asked.detail == "If the account exists, a message has been sent."
    bad = check(reset_password.sync_detailed(client=anonymous, body=ResetBody(token="made-up", new_password="NewStrong456")), 400, ValidationErrorBody)
    assert bad.errors[0].field == "token"
    renamed = check(update_account.sync_detailed(client=client, body=UpdateAccountBody(name="Pia")), 200, UserOut)
    assert renamed.name == "Pia"
    check(update_account.sync_detailed(client=client, body=UpdateAccountBody(email="n" + email)), 409, ErrorBody)

    # Profiles.
    mine = check(get_my_profile.sync_detailed(client=client), 200, ProfileOut)
    assert mine.email == email and mine.name == "Pia"
    updated = check(update_my_profile.sync_detailed(client=client, body=ProfileBody(bio="Hello", phone="+100200300")), 200, ProfileOut)
    assert updated.bio == "Hello" and updated.phone == "+100200300"
    bad_phone = check(update_my_profile.sync_detailed(client=client, body=ProfileBody(phone="12")), 400, ValidationErrorBody)
    assert bad_phone.errors[0].field == "phone"
    public = check(get_public_profile.sync_detailed(created.id, client=client), 200, ProfilePublic)
    assert public.bio == "Hello" and not hasattr(public, "email")
    check(get_public_profile.sync_detailed(999999, client=client), 404, ErrorBody)
    check(create_profile.sync_detailed(client=client, body=ProfileBody(bio="again")), 409, ErrorBody)

    # Photos: upload, download, delete.
    image = png(12, 8)
    upload = UploadMyPhotoBody(file=File(payload=io.BytesIO(image), file_name="me.png", mime_type="image/png"))
    with_photo = check(upload_my_photo.sync_detailed(client=client, body=upload), 200, ProfileOut)
    _, user_id, name = with_photo.profile_photo_path.split("/")
    photo = check(get_photo.sync_detailed(int(user_id), name, client=anonymous), 200, File)
    assert photo.payload.read().startswith(b"\x89PNG")
    not_image = UploadMyPhotoBody(file=File(payload=io.BytesIO(b"hello"), file_name="a.png", mime_type="image/png"))
    check(upload_my_photo.sync_detailed(client=client, body=not_image), 400, ValidationErrorBody)
    check(delete_my_photo.sync_detailed(client=client), 204, None)
    check(get_photo.sync_detailed(int(user_id), name, client=anonymous), 404, ErrorBody)

    # Deleting the profile, creating it again.
    check(delete_my_profile.sync_detailed(client=client), 204, None)
    check(get_my_profile.sync_detailed(client=client), 404, ErrorBody)
    again = check(create_profile.sync_detailed(client=client, body=ProfileBody(bio="back")), 201, ProfileOut)
    assert again.bio == "back"

    # Sessions: refresh, the list, ending one, password change, logout, logout everywhere.
    renewed = check(refresh.sync_detailed(client=anonymous, body=RefreshBody(refresh_token=tok.refresh_token)), 200, Token)
    assert renewed.refresh_token != tok.refresh_token and renewed.refresh_expires_in > 0
    check(refresh.sync_detailed(client=anonymous, body=RefreshBody(refresh_token="not-a-token")), 401, ErrorBody)
    client = AuthenticatedClient(base_url=BASE, token=renewed.access_token, raise_on_unexpected_status=True)
    sessions = check(list_my_sessions.sync_detailed(client=client), 200, list)
    assert all(isinstance(s, SessionOut) for s in sessions), sessions
    assert [s.current for s in sessions].count(True) == 1
    other = next(s for s in sessions if not s.current)
    check(revoke_my_session.sync_detailed(other.id, client=client), 204, None)
    check(revoke_my_session.sync_detailed(other.id, client=client), 404, ErrorBody)
    new_password = "NewStrong456"
    wrong = check(change_my_password.sync_detailed(client=client, body=ChangePasswordBody(current_password="Wrong-pass-1", new_password=new_password)), 400, ValidationErrorBody)
    assert wrong.errors[0].field == "current_password"
    check(change_my_password.sync_detailed(client=client, body=ChangePasswordBody(current_password=PASSWORD, new_password=new_password)), 204, None)
    check(logout.sync_detailed(client=client), 204, None)
    check(get_account.sync_detailed(client=client), 401, ErrorBody)
    tok = check(login.sync_detailed(client=anonymous, body=LoginBody(email=email, password=new_password)), 200, Token)
    client = AuthenticatedClient(base_url=BASE, token=tok.access_token, raise_on_unexpected_status=True)
    check(logout_all.sync_detailed(client=client), 204, None)
    check(get_account.sync_detailed(client=client), 401, ErrorBody)

    # Deleting the account.
    tok = check(login.sync_detailed(client=anonymous, body=LoginBody(email=email, password=new_password)), 200, Token)
    client = AuthenticatedClient(base_url=BASE, token=tok.access_token, raise_on_unexpected_status=True)
    wrong = check(delete_my_account.sync_detailed(client=client, body=DeleteAccountBody(password="Wrong-pass-1")), 400, ValidationErrorBody)
    assert wrong.errors[0].field == "password"
    check(delete_my_account.sync_detailed(client=client, body=DeleteAccountBody(password=new_password)), 204, None)
    check(login.sync_detailed(client=anonymous, body=LoginBody(email=email, password=new_password)), 401, ErrorBody)
    check(register.sync_detailed(client=anonymous, body=RegisterBody(email=email, password=PASSWORD)), 201, UserCreated)

    # An account an admin disabled: login and the token path answer 403 with the login's
    # refusal, refresh with a plain error. The admin comes from the server's create-admin
    # command.
    admin_tok = check(login.sync_detailed(client=anonymous, body=LoginBody(email=os.environ["ADMIN_EMAIL"], password=os.environ["ADMIN_PASSWORD"])), 200, Token)
    admin = AuthenticatedClient(base_url=BASE, token=admin_tok.access_token, raise_on_unexpected_status=True)
    tok = check(login.sync_detailed(client=anonymous, body=LoginBody(email=email, password=PASSWORD)), 200, Token)
    account_id = check(get_account.sync_detailed(client=AuthenticatedClient(base_url=BASE, token=tok.access_token)), 200, UserOut).id
    user = check(disable_user.sync_detailed(account_id, client=admin), 200, AdminUserOut)
    assert user.disabled is True
    for response, kind in (
        (login.sync_detailed(client=anonymous, body=LoginBody(email=email, password=PASSWORD)), LoginRefusedBody),
        (token.sync_detailed(client=anonymous, body=LoginForm(username=email, password=PASSWORD)), LoginRefusedBody),
        (refresh.sync_detailed(client=anonymous, body=RefreshBody(refresh_token=tok.refresh_token)), ErrorBody),
    ):
        refused = check(response, 403, kind)
        assert refused.detail == "Account disabled", refused
    check(enable_user.sync_detailed(account_id, client=admin), 200, AdminUserOut)
    check(login.sync_detailed(client=anonymous, body=LoginBody(email=email, password=PASSWORD)), 200, Token)

    print(f"python client: {steps} steps passed")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as failure:
        print(f"python client: step {steps} failed: {failure!r}", file=sys.stderr)
        raise
