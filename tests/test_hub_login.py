"""The hub's rendered values in their real consumers: JupyterHub 5.3 with OAuthenticator 17.3
and KubeSpawner 7.0, configured as the z2jh hub image configures itself, logging users in
through a local IAM-like OIDC issuer on loopback.

The values are the program's own render for the cms-bari stack; only the issuer URL is the
test issuer's (and, in the refresh test, the refresh timing)."""

from __future__ import annotations

import asyncio
import html
import json
import os
import re
import secrets
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import requests
from conftest import stack_values
from jupyterhub.crypto import CryptKeeper
from support.hub import Hub, hub_app, login, run_hub
from support.oidc import TestIssuer
from traitlets.config import LazyConfigValue

from components.config.loader import build_config
from components.dask.hub import SERVER_TOKEN_SCOPES as DASK_SCOPES
from components.facility import hub_site
from components.hub.files import HERE as HUBFILES
from components.hub.values import SERVER_TOKEN_SCOPES, hub_values

pytestmark = pytest.mark.daemon

STACK = "cms-bari"
CLIENT_SECRET = secrets.token_urlsafe(24)
HUB_ENV = {
    "OAUTH_CLIENT_SECRET": CLIENT_SECRET,
    "AF_COOKIE_SECRET": secrets.token_hex(32),
    "JUPYTERHUB_CRYPT_KEY": secrets.token_hex(32),
    "AF_DASK_GATEWAY_TOKEN": secrets.token_hex(32),  # the Dask gateway's service token (cms-bari runs it)
}
USERS = {
    "alice": ["/cms"],  # a physicist
    "bob": ["/cms", "/cms/ml"],  # entitled to GPUs
    "carol": ["/atlas"],  # another experiment
    "dave": ["/cms/af-admins"],  # an operator
}


def rendered(issuer_url: str) -> dict[str, Any]:
    """The program's values with `issuer_url` as the IAM. The config admits only HTTPS issuers;
    the test issuer serves plain HTTP on loopback, so the values are rendered for its https://
    twin and every mention of that twin then points at the test issuer."""
    secure = "https://" + issuer_url.removeprefix("http://").removeprefix("https://")
    values, secret = stack_values(STACK)
    values["identity"] = {**values.get("identity", {}), "issuer": secure}
    cfg = build_config(values, secret)
    assert str(cfg.identity.issuer) == secure, "the test issuer's URL is already in normal form"
    return json.loads(json.dumps(hub_values(cfg, hub_site(cfg))).replace(secure, issuer_url))


def test_rendered_values_are_the_programs(shipped):
    """What these tests load is what the program deploys, up to the issuer's URLs."""
    from test_hub import hub_values as planned

    ours = rendered("https://cms-auth.cern.ch/")
    assert ours == planned(shipped(STACK))
    swapped = rendered("http://127.0.0.1:9/")
    oauth = swapped["hub"]["config"].pop("GenericOAuthenticator")
    for key in ("authorize_url", "token_url", "userdata_url"):
        assert oauth[key].startswith("http://127.0.0.1:9/")
        ours["hub"]["config"]["GenericOAuthenticator"].pop(key), oauth.pop(key)
    assert oauth == ours["hub"]["config"].pop("GenericOAuthenticator")
    assert swapped == ours


def _spawner(groups: list[str]) -> SimpleNamespace:
    return SimpleNamespace(user=SimpleNamespace(groups=[SimpleNamespace(name=g) for g in groups]))


def _resolved(value: Any, initial: Any) -> Any:
    """A config value as the trait will hold it (z2jh extends some lists and dicts lazily)."""
    return value.get_value(initial) if isinstance(value, LazyConfigValue) else value


def test_the_hub_ends_up_with_the_rendered_configuration(tmp_path):
    issuer = "https://iam.example.org/"
    with hub_app(rendered(issuer), HUB_ENV, tmp_path) as app:
        authenticator = app.authenticator_class(parent=app)
        assert type(authenticator).__name__ == "GenericOAuthenticator"
        assert (authenticator.authorize_url, authenticator.token_url, authenticator.userdata_url) == (
            f"{issuer}authorize",
            f"{issuer}token",
            f"{issuer}userinfo",
        )
        assert authenticator.client_id == "cms-analysis-facility"
        assert authenticator.client_secret == CLIENT_SECRET  # from the Secret, not the values
        assert authenticator.scope == ["openid", "profile", "email", "offline_access", "wlcg", "wlcg.groups"]
        assert authenticator.allowed_groups == {"/cms"} and authenticator.admin_groups == {"/cms/af-admins"}
        assert authenticator.manage_groups and authenticator.enable_auth_state and authenticator.refresh_pre_spawn
        assert not authenticator.allow_all
        auth_state = {"oauth_user": {"wlcg.groups": ["/cms/ml", "/cms"], "groups": ["cms"]}}
        assert asyncio.run(authenticator.get_user_groups(auth_state)) == {"/cms", "/cms/ml"}
        assert authenticator.refresh_user_hook.__name__ == "af_refresh_early"
        assert app.cookie_secret == bytes.fromhex(HUB_ENV["AF_COOKIE_SECRET"])
        assert CryptKeeper(config=app.config).keys == [bytes.fromhex(HUB_ENV["JUPYTERHUB_CRYPT_KEY"])]
        assert app.config.Spawner.server_token_scopes == [*SERVER_TOKEN_SCOPES, *DASK_SCOPES]  # the gateway's too
        user_role = next(r for r in app.config.JupyterHub.load_roles if r["name"] == "user")
        # Users' own permissions, their auth state, and the Dask gateway (cms-bari runs one).
        assert user_role["scopes"] == ["self", "admin:auth_state!user", "access:services!service=dask-gateway"]

        profiles = app.config.KubeSpawner.profile_list
        offered = {user: [p["slug"] for p in profiles(_spawner(groups))] for user, groups in USERS.items()}
        assert offered["alice"] == ["small", "medium", "large"]
        assert offered["bob"] == ["small", "medium", "large", "gpu-gpu-a100"]
        gpu = profiles(_spawner(["/cms/ml"]))[-1]["kubespawner_override"]
        assert gpu["extra_resource_limits"] == {"nvidia.com/gpu": "1"}
        assert gpu["tolerations"][0]["key"] == "nvidia.com/gpu"
        # /cvmfs read-only, the home volume, the token script and its environment
        mounts = {m["mountPath"]: m for m in _resolved(app.config.KubeSpawner.volume_mounts, [])}
        assert mounts["/cvmfs"]["readOnly"] is True
        assert app.config.Spawner.cmd == ["python3", "/opt/af/af_token.py", "jupyterhub-singleuser"]
        assert _resolved(app.config.KubeSpawner.environment, {})["BEARER_TOKEN_FILE"] == "/tmp/af-bearer-token"


# --- end to end: login through the test issuer -----------------------------------------------------


@pytest.fixture(scope="module")
def facility(tmp_path_factory) -> Iterator[tuple[TestIssuer, Hub, dict[str, Any]]]:
    """The rendered hub against a test issuer whose tokens are close to expiry (10 minutes, inside the refresh margin),
    polled every second instead of every 5 minutes."""
    with TestIssuer(access_token_lifetime=600) as issuer:
        values = rendered(issuer.url)
        values["hub"]["config"]["Authenticator"]["auth_refresh_age"] = 1
        for user, groups in USERS.items():
            issuer.add_user(user, groups=groups, email=f"{user}@example.org")
        with run_hub(values, HUB_ENV, tmp_path_factory.mktemp("hub")) as hub:
            issuer.add_client("cms-analysis-facility", CLIENT_SECRET, [hub.oauth_callback_url])
            yield issuer, hub, values


def _session(facility, user: str, next_url: str = "/hub/home") -> tuple[requests.Session, requests.Response]:
    issuer, hub, _ = facility
    session = requests.Session()
    return session, login(session, hub, issuer, user, next_url)


def test_members_of_the_login_group_get_in(facility):
    _, hub, _ = facility
    _, page = _session(facility, "alice")
    assert page.status_code == 200 and page.url.startswith(hub.url + "/hub/home")
    model = hub.admin("GET", "users/alice").json()
    assert model["admin"] is False and model["groups"] == ["/cms"]


def test_users_outside_the_login_groups_are_refused(facility):
    _, hub, _ = facility
    _, page = _session(facility, "carol")
    assert page.status_code == 403
    assert hub.admin("GET", "users/carol").status_code == 404


def test_admin_group_members_are_admins(facility):
    _, hub, _ = facility
    _, page = _session(facility, "dave")
    assert page.status_code == 200
    assert hub.admin("GET", "users/dave").json()["admin"] is True


def _offered(page: requests.Response) -> list[str]:
    """Profile names on the spawn page KubeSpawner rendered (its form.html: one radio input
    with id profile-item-<slug> and an <h3> with the display name per profile)."""
    assert page.status_code == 200, page.text[-500:]
    slugs = re.findall(r'id="profile-item-([^"]+)"', page.text)
    names = [html.unescape(n) for n in re.findall(r"<h3>([^<]*)</h3>", page.text)]
    assert len(slugs) == len(names), page.text
    return names


def test_gpu_profile_only_for_gpu_groups(facility):
    _, alice_page = _session(facility, "alice", "/hub/spawn")
    _, bob_page = _session(facility, "bob", "/hub/spawn")
    alice, bob = _offered(alice_page), _offered(bob_page)
    assert alice == ["Small", "Medium", "Large"], alice
    assert bob == ["Small", "Medium", "Large", "GPU: 1x A100 (gpu-a100)"], bob


def _user_token(hub: Hub, user: str) -> str:
    """A token with the notebook's scopes, as the spawner creates for the server (the hub
    keeps only what the user holds)."""
    response = hub.admin("POST", f"users/{user}/tokens", json={"scopes": SERVER_TOKEN_SCOPES, "note": "server"})
    assert response.status_code == 201, response.text
    token = response.json()
    assert "admin:auth_state!user=" + user in token["scopes"] or "admin:auth_state!user" in token["scopes"], token
    return token["token"]


def test_the_notebook_token_file_holds_a_fresh_iam_token(facility, tmp_path):
    issuer, hub, values = facility
    _session(facility, "bob")
    first_grants = issuer.grants["refresh_token"]
    token_file = tmp_path / "bt"
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME")},
        "JUPYTERHUB_API_URL": hub.url + "/hub/api",
        "JUPYTERHUB_API_TOKEN": _user_token(hub, "bob"),
        "JUPYTERHUB_USER": "bob",
        "BEARER_TOKEN_FILE": str(token_file),
    }
    script = HUBFILES / "af_token.py"
    assert values["singleuser"]["extraFiles"]["af-token"]["stringData"] == script.read_text()
    time.sleep(1.1)  # past auth_refresh_age: the next request checks the token
    subprocess.run([sys.executable, str(script), "--once"], env=env, check=True, timeout=30)
    claims = issuer.verify(token_file.read_text().strip())
    assert claims["sub"] == issuer.users["bob"].sub and "/cms/ml" in claims["wlcg.groups"]
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    # The login token had 10 minutes left, inside the margin: the hub refreshed it early.
    assert issuer.grants["refresh_token"] > first_grants
    assert claims["exp"] - time.time() > 590


def test_the_token_script_runs_the_notebook_and_refreshes_while_it_lives(tmp_path):
    """A hub or IAM outage must not keep a physicist out of their notebook; the refresher
    polls while the notebook runs and stops with it."""
    env = {
        "PATH": os.environ["PATH"],
        "JUPYTERHUB_API_URL": "http://127.0.0.1:9/hub/api",  # nothing listens: every refresh fails
        "JUPYTERHUB_API_TOKEN": "x",
        "JUPYTERHUB_USER": "nobody",
        "BEARER_TOKEN_FILE": str(tmp_path / "bt"),
        "AF_TOKEN_REFRESH_SECONDS": "1",
    }
    out, err = tmp_path / "out", tmp_path / "err"
    notebook = [sys.executable, "-c", "import time; print('notebook', flush=True); time.sleep(3.5)"]
    with out.open("w") as stdout, err.open("w") as stderr:
        done = subprocess.run(
            [sys.executable, str(HUBFILES / "af_token.py"), *notebook],
            env=env,
            stdout=stdout,
            stderr=stderr,
            timeout=30,
        )
    assert done.returncode == 0 and out.read_text() == "notebook\n"
    failures = err.read_text().count("could not refresh the token")
    assert failures >= 3, err.read_text()  # the first try, then one a second while the notebook ran
    time.sleep(2.5)
    assert err.read_text().count("could not refresh the token") <= failures + 1, "the refresher outlived the notebook"
