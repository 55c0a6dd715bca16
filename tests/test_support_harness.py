"""Self-check of the integration-test harness: a real JupyterHub, configured from z2jh values, logs users in through
the local IAM-like issuer. Uses hand-written values, not the facility's: it tests tests/support, not the product."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from support.hub import Hub, login, run_hub
from support.oidc import TestIssuer

pytestmark = pytest.mark.daemon

CLIENT_ID = "jupyterhub"
CLIENT_SECRET = secrets.token_urlsafe(16)
ACCESS_TOKEN_LIFETIME = 2  # seconds: short enough for the refresh test to outlive a token


def hub_values(issuer: TestIssuer) -> dict[str, Any]:
    secret_ref = {"secretKeyRef": {"name": "hub-oidc", "key": "value"}}
    return {
        "custom": {"loginService": "INDIGO IAM (test)"},
        "hub": {
            "config": {
                "JupyterHub": {"authenticator_class": "generic-oauth"},
                "Authenticator": {"enable_auth_state": True, "auth_refresh_age": 1},
                "GenericOAuthenticator": {
                    "client_id": CLIENT_ID,
                    "authorize_url": issuer.url + "authorize",
                    "token_url": issuer.url + "token",
                    "userdata_url": issuer.url + "userinfo",
                    "scope": ["openid", "profile", "email", "wlcg.groups"],
                    "username_claim": "preferred_username",
                    "allowed_groups": ["/cms"],
                    "admin_groups": ["/cms/admins"],
                    "manage_groups": True,
                },
            },
            # OAUTH_CLIENT_SECRET is GenericOAuthenticator's default source of client_secret. JUPYTERHUB_CRYPT_KEY is
            # set as a deployment would, but the chart's CryptKeeper.keys (generated) take precedence over it.
            "extraEnv": {
                "OAUTH_CLIENT_SECRET": {"valueFrom": secret_ref},
                "JUPYTERHUB_CRYPT_KEY": {"valueFrom": secret_ref},
            },
            "extraConfig": {
                "10-wlcg-groups": "c.GenericOAuthenticator.auth_state_groups_key = "
                'lambda auth_state: auth_state["oauth_user"].get("wlcg.groups", [])',
                "20-login-service": 'c.GenericOAuthenticator.login_service = get_config("custom.loginService")',
            },
        },
        "singleuser": {
            "profileList": [
                {"display_name": "CPU only", "slug": "cpu", "default": True},
                {
                    "display_name": "One A100 GPU",
                    "slug": "gpu",
                    "kubespawner_override": {"extra_resource_limits": {"nvidia.com/gpu": "1"}},
                },
            ]
        },
    }


@pytest.fixture(scope="module")
def issuer() -> Iterator[TestIssuer]:
    with TestIssuer(access_token_lifetime=ACCESS_TOKEN_LIFETIME) as issuer:
        issuer.add_user("alice", ["/cms", "/cms/ml"])
        issuer.add_user("bob", ["/atlas"])
        issuer.add_user("carol", ["/cms/admins"])
        yield issuer


@pytest.fixture(scope="module")
def hub(issuer: TestIssuer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    env = {"OAUTH_CLIENT_SECRET": CLIENT_SECRET, "JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32)}
    with run_hub(hub_values(issuer), env, tmp_path_factory.mktemp("hub")) as hub:
        issuer.add_client(CLIENT_ID, CLIENT_SECRET, [hub.oauth_callback_url])
        yield hub


def test_user_in_allowed_group_logs_in(hub: Hub, issuer: TestIssuer) -> None:
    session = requests.Session()
    page = login(session, hub, issuer, "alice")
    assert page.status_code == 200, hub.log()
    assert page.url == hub.url + "/hub/home"
    me = session.get(hub.url + "/hub/api/user", timeout=10).json()
    assert (me["name"], me["admin"], sorted(me["groups"])) == ("alice", False, ["/cms", "/cms/ml"])


def test_user_in_no_allowed_group_is_forbidden(hub: Hub, issuer: TestIssuer) -> None:
    assert login(requests.Session(), hub, issuer, "bob").status_code == 403


def test_admin_group_member_is_admin(hub: Hub, issuer: TestIssuer) -> None:
    assert login(requests.Session(), hub, issuer, "carol").status_code == 200
    model = hub.admin("GET", "users/carol").json()
    assert model["admin"] is True
    assert model["auth_state"]["oauth_user"]["wlcg.groups"] == ["/cms/admins"]


def test_extra_config_runs_with_z2jh_helpers(hub: Hub) -> None:
    assert "Sign in with INDIGO IAM (test)" in requests.get(hub.url + "/hub/login", timeout=10).text


def test_spawn_page_renders_profile_list(hub: Hub, issuer: TestIssuer) -> None:
    page = login(requests.Session(), hub, issuer, "alice", next_url="/hub/spawn")
    assert page.status_code == 200, hub.log()
    assert "CPU only" in page.text
    assert "One A100 GPU" in page.text


def test_expired_access_token_is_refreshed(hub: Hub, issuer: TestIssuer) -> None:
    session = requests.Session()
    assert login(session, hub, issuer, "alice").status_code == 200
    before = hub.admin("GET", "users/alice").json()["auth_state"]["access_token"]
    refreshes = issuer.grants["refresh_token"]
    time.sleep(ACCESS_TOKEN_LIFETIME + 1)
    page = session.get(hub.url + "/hub/home", timeout=10)
    assert page.url == hub.url + "/hub/home"  # still logged in, not sent back to the login page
    assert issuer.grants["refresh_token"] > refreshes
    assert hub.admin("GET", "users/alice").json()["auth_state"]["access_token"] != before
