"""A local OpenID Connect issuer modelled on INDIGO-IAM, so a real JupyterHub can log test users in over loopback.

It keeps IAM's endpoint paths, token shapes and WLCG claims: RS256 JWT access tokens carrying `wlcg.ver` and, when the
`wlcg.groups` scope was granted, `wlcg.groups` (group paths such as "/cms/ml"); opaque refresh tokens that are not
rotated; userinfo claims filtered by scope like IAM's (`profile`: names and `groups` without the leading slash,
`email`: email, `wlcg.groups`: group paths). IAM's login form is replaced by the standard `login_hint` parameter of
/authorize; the user it names then has an issuer session cookie, so later redirects to /authorize (a hub sending an
expired user back to log in) sign the same user in without a hint, as IAM's SSO session would.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import ssl
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from .serving import ThreadedServer

SESSION_COOKIE = "IAM_SESSION"
CODE_LIFETIME = 60  # seconds an authorization code stays redeemable
SUPPORTED_SCOPES = ("openid", "profile", "email", "offline_access", "wlcg.groups")


@dataclass
class IamUser:
    """An IAM account; tests may change `groups` between logins to model membership changes."""

    username: str
    groups: list[str]
    email: str
    name: str
    sub: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass(frozen=True)
class Client:
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]


@dataclass(frozen=True)
class _Code:
    client_id: str
    redirect_uri: str
    username: str
    scope: tuple[str, ...]
    nonce: str | None
    challenge: str | None
    challenge_method: str
    expires: float


@dataclass(frozen=True)
class _RefreshGrant:
    client_id: str
    username: str
    scope: tuple[str, ...]


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    headers: dict[str, str]  # lower-case names


@dataclass(frozen=True)
class _Response:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()


class _OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


class TestIssuer(ThreadedServer):
    """The issuer, serving on 127.0.0.1 at a free port while used as a context manager.

    `grants` counts the tokens issued per grant type ("authorization_code", "refresh_token"), so a test can assert that
    the hub refreshed a token.
    """

    __test__ = False  # a helper, not a pytest test class

    def __init__(self, *, access_token_lifetime: int = 3600, ca: Any = None) -> None:
        """`ca` (a `support.xrootd.TestCA`): serve HTTPS with a certificate from it, as IAM does,
        so token consumers that accept only https:// issuers (scitokens-cpp) can use this one."""
        self.access_token_lifetime = access_token_lifetime
        self.ca = ca
        self.users: dict[str, IamUser] = {}
        self.clients: dict[str, Client] = {}
        self.grants: Counter[str] = Counter()
        self.kid = "rsa1"
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._codes: dict[str, _Code] = {}
        self._refresh_tokens: dict[str, _RefreshGrant] = {}
        self._sessions: dict[str, str] = {}
        self._lock = threading.Lock()
        self._server = _Server(self)
        scheme = "http"
        if ca is not None:
            cert, key = ca.issue(ca.pem.parent / f"oidc-{secrets.token_hex(4)}", "oidc")
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self._server.server_port}/"
        self._thread = threading.Thread(target=self._server.serve_forever, name="test-issuer", daemon=True)

    def add_user(self, username: str, groups: list[str] | tuple[str, ...] = (), email: str | None = None) -> IamUser:
        """Register an account, or update it keeping its subject; `groups` are IAM group paths ("/cms/ml")."""
        if bad := [g for g in groups if not g.startswith("/")]:
            raise ValueError(f"IAM group paths start with '/': {bad}")
        user = IamUser(username, list(groups), email or f"{username}@example.org", username.title())
        with self._lock:
            if username in self.users:
                user.sub = self.users[username].sub
            self.users[username] = user
        return user

    def add_client(self, client_id: str, client_secret: str, redirect_uris: list[str] | tuple[str, ...]) -> Client:
        client = Client(client_id, client_secret, tuple(redirect_uris))
        with self._lock:
            self.clients[client_id] = client
        return client

    def verify(self, token: str) -> dict[str, Any]:
        """Claims of an access token this issuer signed; raises jwt.InvalidTokenError if forged or expired."""
        return jwt.decode(
            token,
            self._key.public_key(),
            algorithms=["RS256"],
            issuer=self.url,
            options={"verify_aud": False, "require": ["exp", "iat", "sub", "scope"]},
        )

    # -- endpoints -----------------------------------------------------------------------------------------------

    def _handle(self, request: _Request) -> _Response:
        routes = {
            ("GET", "/.well-known/openid-configuration"): self._discovery,
            ("GET", "/jwk"): self._jwks,
            ("GET", "/authorize"): self._authorize,
            ("POST", "/token"): self._token,
            ("GET", "/userinfo"): self._userinfo,
            ("POST", "/userinfo"): self._userinfo,
        }
        # scitokens-cpp asks for `<issuer>/.well-known/…` with the issuer's trailing slash kept.
        endpoint = routes.get((request.method, "/" + request.path.lstrip("/")))
        if endpoint is None:
            return _json(404, {"error": "not_found"})
        try:
            with self._lock:
                return endpoint(request)
        except _OAuthError as e:
            headers = (("WWW-Authenticate", f'Bearer error="{e.error}"'),) if e.error == "invalid_token" else ()
            return _json(e.status, {"error": e.error, "error_description": e.description}, headers)

    def _discovery(self, request: _Request) -> _Response:
        return _json(
            200,
            {
                "issuer": self.url,
                "authorization_endpoint": self.url + "authorize",
                "token_endpoint": self.url + "token",
                "userinfo_endpoint": self.url + "userinfo",
                "jwks_uri": self.url + "jwk",
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                "code_challenge_methods_supported": ["plain", "S256"],
                "scopes_supported": list(SUPPORTED_SCOPES),
            },
        )

    def _jwks(self, request: _Request) -> _Response:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        return _json(200, {"keys": [{**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}]})

    def _authorize(self, request: _Request) -> _Response:
        q = request.query
        client = self.clients.get(q.get("client_id", ""))
        redirect_uri = q.get("redirect_uri", "")
        # Without a known client and redirect URI there is nowhere safe to send an error to (RFC 6749 4.1.2.1).
        if client is None:
            raise _OAuthError(400, "invalid_client", f"unknown client_id {q.get('client_id')!r}")
        if redirect_uri not in client.redirect_uris:
            raise _OAuthError(400, "invalid_request", f"redirect_uri {redirect_uri!r} not registered for {client}")

        def back(**params: str | None) -> _Response:
            query = urlencode({k: v for k, v in {**params, "state": q.get("state")}.items() if v is not None})
            return _Response(
                302, headers=(("Location", f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{query}"),)
            )

        if q.get("response_type") != "code":
            return back(error="unsupported_response_type", error_description="only the code flow is supported")
        challenge_method = q.get("code_challenge_method", "plain")
        if challenge_method not in ("plain", "S256"):
            return back(error="invalid_request", error_description=f"code_challenge_method {challenge_method}")
        username, session = self._sign_in(request)
        if username is None:
            raise _OAuthError(401, "login_required", "pass login_hint=<username> (this stands in for IAM's login form)")
        code = secrets.token_urlsafe(24)
        self._codes[code] = _Code(
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            username=username,
            scope=_scopes(q.get("scope", "")),
            nonce=q.get("nonce"),
            challenge=q.get("code_challenge"),
            challenge_method=challenge_method,
            expires=time.time() + CODE_LIFETIME,
        )
        response = back(code=code)
        cookie = f"{SESSION_COOKIE}={session}; Path=/; HttpOnly"
        return _Response(response.status, headers=(*response.headers, ("Set-Cookie", cookie)))

    def _sign_in(self, request: _Request) -> tuple[str | None, str]:
        """The user named by login_hint, else the one of the issuer session cookie; and that user's session id."""
        cookies = dict(
            part.strip().partition("=")[::2] for part in request.headers.get("cookie", "").split(";") if "=" in part
        )
        hint = request.query.get("login_hint")
        if hint is not None:
            if hint not in self.users:
                raise _OAuthError(401, "login_required", f"no IAM account {hint!r}")
            session = secrets.token_urlsafe(16)
            self._sessions[session] = hint
            return hint, session
        session = cookies.get(SESSION_COOKIE, "")
        username = self._sessions.get(session)
        return (username if username in self.users else None), session

    def _token(self, request: _Request) -> _Response:
        client = self._client(request)
        form = request.form
        grant_type = form.get("grant_type", "")
        if grant_type == "authorization_code":
            user, scope, nonce = self._redeem_code(client, form)
            refresh_token = secrets.token_urlsafe(32)
            self._refresh_tokens[refresh_token] = _RefreshGrant(client.client_id, user.username, scope)
        elif grant_type == "refresh_token":
            refresh_token = form.get("refresh_token", "")
            user, scope = self._redeem_refresh_token(client, refresh_token, form.get("scope"))
            nonce = None
        elif grant_type == "client_credentials":
            return self._client_credentials(client, form)
        else:
            raise _OAuthError(400, "unsupported_grant_type", f"grant_type {grant_type!r}")
        self.grants[grant_type] += 1
        body = {
            "access_token": self._access_token(client, user, scope),
            "token_type": "Bearer",
            "refresh_token": refresh_token,
            "id_token": self._id_token(client, user, nonce),
            "expires_in": self.access_token_lifetime,
            "scope": " ".join(scope),
        }
        return _json(200, body, (("Cache-Control", "no-store"),))

    def _client_credentials(self, client: Client, form: dict[str, str]) -> _Response:
        """A token for the client itself (a service such as a cache): no user, no refresh token, as IAM does."""
        scope = _scopes(form.get("scope", ""))
        claims = self._access_claims(client, client.client_id, form.get("audience") or client.client_id, scope)
        self.grants["client_credentials"] += 1
        body = {
            "access_token": self._sign(claims),
            "token_type": "Bearer",
            "expires_in": self.access_token_lifetime,
            "scope": " ".join(scope),
        }
        return _json(200, body, (("Cache-Control", "no-store"),))

    def _client(self, request: _Request) -> Client:
        """The client authenticated by client_secret_basic or client_secret_post (exactly one of them)."""
        authorization = request.headers.get("authorization", "")
        if authorization.startswith("Basic "):
            if "client_secret" in request.form:
                raise _OAuthError(400, "invalid_request", "more than one client authentication method")
            try:
                client_id, _, secret = base64.b64decode(authorization[6:], validate=True).decode().partition(":")
            except ValueError as e:
                raise _OAuthError(401, "invalid_client", f"malformed Basic credentials: {e}") from e
            client_id, secret = unquote_plus(client_id), unquote_plus(secret)
        elif "client_secret" in request.form:
            client_id, secret = request.form.get("client_id", ""), request.form["client_secret"]
        else:
            raise _OAuthError(401, "invalid_client", "no client authentication")
        client = self.clients.get(client_id)
        if client is None or not secrets.compare_digest(client.client_secret, secret):
            raise _OAuthError(401, "invalid_client", f"bad credentials for client {client_id!r}")
        return client

    def _redeem_code(self, client: Client, form: dict[str, str]) -> tuple[IamUser, tuple[str, ...], str | None]:
        code = self._codes.pop(form.get("code", ""), None)  # one use only, even when the exchange fails
        if code is None or code.expires < time.time() or code.client_id != client.client_id:
            raise _OAuthError(400, "invalid_grant", "unknown, used or expired authorization code")
        if form.get("redirect_uri") != code.redirect_uri:
            raise _OAuthError(400, "invalid_grant", "redirect_uri differs from the authorization request's")
        if code.challenge is not None and not _pkce_ok(
            code.challenge, code.challenge_method, form.get("code_verifier")
        ):
            raise _OAuthError(400, "invalid_grant", "PKCE code_verifier does not match the code_challenge")
        user = self.users.get(code.username)
        if user is None:
            raise _OAuthError(400, "invalid_grant", f"account {code.username!r} was removed")
        return user, code.scope, code.nonce

    def _redeem_refresh_token(
        self, client: Client, refresh_token: str, requested: str | None
    ) -> tuple[IamUser, tuple[str, ...]]:
        grant = self._refresh_tokens.get(refresh_token)
        if grant is None or grant.client_id != client.client_id or grant.username not in self.users:
            raise _OAuthError(400, "invalid_grant", "unknown refresh token")
        scope = grant.scope if requested is None else _scopes(requested)
        if not set(scope) <= set(grant.scope):
            raise _OAuthError(400, "invalid_scope", f"{requested!r} exceeds the granted {' '.join(grant.scope)!r}")
        return self.users[grant.username], scope

    def _userinfo(self, request: _Request) -> _Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _OAuthError(401, "invalid_token", "a Bearer access token is required")
        try:
            claims = self.verify(token)
        except jwt.InvalidTokenError as e:
            raise _OAuthError(401, "invalid_token", str(e)) from e
        user = next((u for u in self.users.values() if u.sub == claims["sub"]), None)
        if user is None:
            raise _OAuthError(401, "invalid_token", "the token's subject no longer exists")
        scope = set(claims["scope"].split())
        if "openid" not in scope:
            raise _OAuthError(403, "insufficient_scope", "userinfo needs the openid scope")
        info: dict[str, Any] = {"sub": user.sub}
        if "profile" in scope:
            info |= {"preferred_username": user.username, "name": user.name, "groups": [g[1:] for g in user.groups]}
        if "email" in scope:
            info |= {"email": user.email, "email_verified": True}
        if "wlcg.groups" in scope:
            info["wlcg.groups"] = list(user.groups)
        return _json(200, info)

    # -- tokens --------------------------------------------------------------------------------------------------

    def _access_claims(self, client: Client, subject: str, audience: str, scope: tuple[str, ...]) -> dict[str, Any]:
        """The claims every access token has (WLCG token profile)."""
        now = int(time.time())
        return {
            "wlcg.ver": "1.0",
            "iss": self.url,
            "sub": subject,
            "aud": audience,
            "client_id": client.client_id,
            "iat": now,
            "nbf": now,
            "exp": now + self.access_token_lifetime,
            "jti": str(uuid.uuid4()),
            "scope": " ".join(scope),
        }

    def _access_token(self, client: Client, user: IamUser, scope: tuple[str, ...]) -> str:
        claims = self._access_claims(client, user.sub, client.client_id, scope)
        if "wlcg.groups" in scope:
            claims["wlcg.groups"] = list(user.groups)
        return self._sign(claims)

    def _id_token(self, client: Client, user: IamUser, nonce: str | None) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.url,
            "sub": user.sub,
            "aud": client.client_id,
            "iat": now,
            "auth_time": now,
            "exp": now + self.access_token_lifetime,
            "jti": str(uuid.uuid4()),
            "preferred_username": user.username,
            "name": user.name,
            "email": user.email,
        }
        if nonce is not None:
            claims["nonce"] = nonce
        return self._sign(claims)

    def _sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self.kid})


def _scopes(scope: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(scope.split()))


def _pkce_ok(challenge: str, method: str, verifier: str | None) -> bool:
    if verifier is None:
        return False
    if method == "S256":
        verifier = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return secrets.compare_digest(challenge, verifier)


def _json(status: int, body: dict[str, Any], headers: tuple[tuple[str, str], ...] = ()) -> _Response:
    return _Response(status, json.dumps(body).encode(), (("Content-Type", "application/json"), *headers))


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, issuer: TestIssuer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.issuer = issuer


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        request = _Request(
            method=self.command,
            path=url.path,
            query=dict(parse_qsl(url.query)),
            form=dict(parse_qsl(body)),
            headers={k.lower(): v for k, v in self.headers.items()},
        )
        response = self.server.issuer._handle(request)
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the hub log and the test's assertions say what happened."""
