"""A small git forge on 127.0.0.1: an OpenID Connect provider (authlib) that is also GitLab-shaped.

``Forge`` serves, on a free port, in a thread of the test process:

- OpenID Connect: ``/.well-known/openid-configuration``, ``/oauth/authorize`` (a login form for
  its users), ``/oauth/token``, ``/oauth/userinfo`` (with a ``groups`` claim), ``/oauth/discovery/keys``:
  GitLab's own paths, so oauthenticator's ``GitLabOAuthenticator`` and ``GenericOAuthenticator`` both work;
- GitLab's REST API as the authenticator and binderlite ask it: ``/api/v4/user``, ``/api/v4/version``,
  ``/api/v4/groups``, ``/api/v4/groups/<group>/members/all/<id>``, ``/api/v4/projects/<url-encoded path>``
  (200 for members, 404 otherwise, 401 for a bad token); and GitHub Enterprise's
  ``/api/v3/repos/<owner>/<repo>`` with the same rule;
- git's smart HTTP (``git http-backend`` as a CGI) at ``/<path>.git``: a project's members with
  ``oauth2:<their token>`` (as GitLab), or the deploy credential (``forge.deploy``), may read; anyone else
  gets 401 (no credential) or 404 (a credential that may not read it).

Everything stays in memory and in ``root``; ``close()`` stops the server.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oidc.core import OpenIDCode
from authlib.oidc.core.models import AuthorizationCodeMixin
from flask import Flask, Response, jsonify, request
from joserfc.jwk import RSAKey
from markupsafe import escape
from werkzeug.serving import WSGIRequestHandler, make_server

from tests.helpers.gitserver import FIXTURES, GIT


@dataclass(frozen=True)
class ForgeUser:
    id: int
    username: str
    password: str
    groups: tuple[str, ...] = ()

    @property
    def email(self) -> str:
        return f"{self.username}@forge.invalid"


@dataclass
class Project:
    path: str  # "group/name"
    id: int
    members: set[str] = field(default_factory=set)


@dataclass
class Client(ClientMixin):
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]

    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope):
        return scope or ""

    def check_redirect_uri(self, redirect_uri):
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret):
        return hmac.compare_digest(client_secret, self.client_secret)

    def check_endpoint_auth_method(self, method, endpoint):
        return method in ("client_secret_basic", "client_secret_post") if endpoint == "token" else True

    def check_response_type(self, response_type):
        return response_type == "code"

    def check_grant_type(self, grant_type):
        return grant_type == "authorization_code"


@dataclass
class Code(AuthorizationCodeMixin):
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: ForgeUser
    nonce: str | None
    auth_time: int

    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope

    def get_nonce(self):
        return self.nonce

    def get_auth_time(self):
        return self.auth_time


LOGIN_FORM = """<!doctype html><html><head><title>Sign in to the test forge</title></head><body>
<h1>Sign in to the test forge</h1><p>{error}</p>
<form method="post"><label>Username <input id="username" name="username" autofocus></label>
<label>Password <input id="password" name="password" type="password"></label>
<button id="sign-in" type="submit">Sign in</button></form></body></html>"""


class QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):  # no access log: the test's output stays readable
        pass


class Forge:
    """The forge: ``users`` by name, ``projects`` by path, OAuth ``clients``, issued ``tokens``."""

    def __init__(self, root: Path):
        self.root = root
        self.repos = root / "repos"
        self.repos.mkdir(parents=True, exist_ok=True)
        self.users: dict[str, ForgeUser] = {}
        self.projects: dict[str, Project] = {}
        self.clients: dict[str, Client] = {}
        self.codes: dict[str, Code] = {}
        self.tokens: dict[str, ForgeUser] = {}
        self.broken = False  # True: the API answers 503, as a forge being upgraded
        self.deploy = ("deploy", "forge-deploy-" + secrets.token_urlsafe(16))
        self.key = RSAKey.generate_key(2048, parameters={"kid": "forge", "use": "sig"}, private=True)
        self.app = self._make_app()
        self.httpd = make_server("127.0.0.1", 0, self.app, threaded=True, request_handler=QuietHandler)
        self.port = self.httpd.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.host = f"127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    # ---- what a test sets up ---------------------------------------------
    def add_user(self, username: str, password: str, groups: tuple[str, ...] = ()) -> ForgeUser:
        user = ForgeUser(len(self.users) + 1, username, password, tuple(groups))
        self.users[username] = user
        return user

    def add_client(self, client_id: str, client_secret: str, redirect_uri: str) -> Client:
        client = Client(client_id, client_secret, (redirect_uri,))
        self.clients[client_id] = client
        return client

    def add_project(self, path: str, fixture: str, members: set[str]) -> str:
        """A private project at ``path`` (``group/name``) holding ``tests/fixtures/repos/<fixture>``; its commit."""
        work = self.root / "work" / path
        if work.exists():
            shutil.rmtree(work)
        shutil.copytree(FIXTURES / fixture, work)
        subprocess.run([*GIT, "init", "-q"], cwd=work, check=True)
        subprocess.run([*GIT, "add", "-A"], cwd=work, check=True)
        subprocess.run([*GIT, "commit", "-q", "-m", "initial commit"], cwd=work, check=True)
        bare = self.repos / f"{path}.git"
        bare.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(bare, ignore_errors=True)
        subprocess.run([*GIT, "clone", "-q", "--bare", str(work), str(bare)], check=True)
        self.projects[path] = Project(path, len(self.projects) + 1, set(members))
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=work, check=True, capture_output=True, text=True
        ).stdout.strip()

    def repo_url(self, path: str) -> str:
        return f"{self.url}/{path}.git"

    def link(self, path: str, ref: str = "main") -> str:
        """The ``git/<escaped url>/<ref>`` link path of a project."""
        return f"git/{quote(self.repo_url(path), safe='')}/{ref}"

    def token_for(self, username: str) -> str:
        """An access token of ``username`` issued without the browser (as a personal access token)."""
        token = "forge-pat-" + secrets.token_urlsafe(16)
        self.tokens[token] = self.users[username]
        return token

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # ---- who is asking ---------------------------------------------------
    def bearer_user(self) -> ForgeUser | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in ("bearer", "token"):
            token = request.headers.get("PRIVATE-TOKEN", "")
        return self.tokens.get(token.strip()) if token else None

    def may_read(self, user: ForgeUser | None, path: str) -> bool:
        project = self.projects.get(path)
        return bool(project and user and user.username in project.members)

    def git_credential(self) -> tuple[str, str] | None:
        """The (username, password) of a git request's basic auth; None when it has none."""
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("basic "):
            return None
        try:
            username, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return ("", "")
        return username, password

    # ---- the app ---------------------------------------------------------
    def _make_app(self) -> Flask:  # noqa: C901 - one route table
        app = Flask("test-forge")
        forge = self

        class CodeGrant(grants.AuthorizationCodeGrant):
            TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post"]

            def save_authorization_code(self, code, req):
                forge.codes[code] = Code(
                    code,
                    req.client.client_id,
                    req.payload.redirect_uri,
                    req.scope or "",
                    req.user,
                    req.payload.data.get("nonce"),
                    int(time.time()),
                )

            def query_authorization_code(self, code, client):
                item = forge.codes.get(code)
                return item if item and item.client_id == client.client_id else None

            def delete_authorization_code(self, authorization_code):
                forge.codes.pop(authorization_code.code, None)

            def authenticate_user(self, authorization_code):
                return authorization_code.user

        class OpenID(OpenIDCode):
            def exists_nonce(self, nonce, req):
                return any(c.nonce == nonce for c in forge.codes.values())

            def resolve_client_private_key(self, client):
                return forge.key

            def get_client_algorithm(self, client):
                return "RS256"

            def get_client_claims(self, client):
                return {"iss": forge.url, "aud": [client.get_client_id()]}

            def get_encode_header(self, client):
                return {"alg": "RS256", "kid": "forge"}

            def generate_user_info(self, user, scope):
                return forge.userinfo(user)

        def save_token(token, req):
            forge.tokens[token["access_token"]] = req.user

        server = AuthorizationServer(app, query_client=self.clients.get, save_token=save_token)
        server.register_grant(CodeGrant, [OpenID()])

        @app.before_request
        def maintenance():
            if self.broken and request.path.startswith("/api/"):
                return jsonify(message="503 Service Unavailable"), 503
            return None

        @app.get("/.well-known/openid-configuration")
        def discovery():
            return jsonify(
                issuer=self.url,
                authorization_endpoint=f"{self.url}/oauth/authorize",
                token_endpoint=f"{self.url}/oauth/token",
                userinfo_endpoint=f"{self.url}/oauth/userinfo",
                jwks_uri=f"{self.url}/oauth/discovery/keys",
                response_types_supported=["code"],
                subject_types_supported=["public"],
                id_token_signing_alg_values_supported=["RS256"],
                scopes_supported=["openid", "profile", "email", "read_user", "read_api"],
                token_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post"],
                claims_supported=["sub", "name", "preferred_username", "nickname", "email", "groups"],
            )

        @app.get("/oauth/discovery/keys")
        def keys():
            return jsonify(keys=[self.key.as_dict(private=False)])

        @app.route("/oauth/authorize", methods=["GET", "POST"])
        def authorize():
            try:
                grant = server.get_consent_grant()
            except Exception as exc:  # noqa: BLE001 - authlib's OAuth2Error; shown as the forge would
                return Response(f"Bad authorization request: {escape(str(exc))}", status=400)
            if request.method == "GET":
                return LOGIN_FORM.format(error="")
            user = self.users.get(request.form.get("username", ""))
            if user is None or not hmac.compare_digest(user.password, request.form.get("password", "")):
                return LOGIN_FORM.format(error="Invalid username or password."), 401
            return server.create_authorization_response(grant=grant, grant_user=user)

        @app.post("/oauth/token")
        def token():
            return server.create_token_response()

        @app.get("/oauth/userinfo")
        def userinfo():
            user = self.bearer_user()
            return jsonify(self.userinfo(user)) if user else unauthorized()

        @app.get("/api/v4/user")
        def api_user():
            user = self.bearer_user()
            if user is None:
                return unauthorized()
            return jsonify(
                id=user.id, username=user.username, name=user.username.title(), email=user.email, state="active"
            )

        @app.get("/api/v4/version")
        def api_version():
            return jsonify(version="17.0.0", revision="test")

        @app.get("/api/v4/groups")
        def api_groups():
            user = self.bearer_user()
            if user is None:
                return unauthorized()
            return jsonify([{"id": i + 1, "name": g, "path": g, "full_path": g} for i, g in enumerate(user.groups)])

        @app.get("/api/v4/groups/<path:group>/members/all/<int:user_id>")
        def api_group_member(group, user_id):
            if self.bearer_user() is None:
                return unauthorized()
            member = next((u for u in self.users.values() if u.id == user_id and group in u.groups), None)
            if member is None:
                return jsonify(message="404 Not found"), 404
            return jsonify(id=member.id, username=member.username, state="active", access_level=30)

        @app.get("/api/v4/projects/<path:project>")
        def api_project(project):
            user = self.bearer_user()
            if user is None and request.headers.get("Authorization"):
                return unauthorized()
            if not self.may_read(user, project):
                return jsonify(message="404 Project Not Found"), 404
            found = self.projects[project]
            return jsonify(
                id=found.id,
                path_with_namespace=found.path,
                visibility="private",
                http_url_to_repo=self.repo_url(found.path),
            )

        @app.get("/api/v3/repos/<owner>/<name>")
        def api_github_repo(owner, name):
            user = self.bearer_user()
            if user is None and request.headers.get("Authorization"):
                return jsonify(message="Bad credentials"), 401
            if not self.may_read(user, f"{owner}/{name}"):
                return jsonify(message="Not Found"), 404
            return jsonify(full_name=f"{owner}/{name}", private=True, clone_url=self.repo_url(f"{owner}/{name}"))

        @app.route("/<path:project>.git/<path:rest>", methods=["GET", "POST"])
        def git(project, rest):
            credential = self.git_credential()
            if credential is None:
                return Response("Authentication required", 401, {"WWW-Authenticate": 'Basic realm="test forge"'})
            if not self._git_may_read(credential, project):
                return Response("Not found", 404)
            return self._http_backend(project, rest, credential[0])

        def unauthorized():
            return jsonify(message="401 Unauthorized"), 401

        return app

    def userinfo(self, user: ForgeUser) -> dict:
        return {
            "sub": str(user.id),
            "name": user.username.title(),
            "preferred_username": user.username,
            "nickname": user.username,
            "email": user.email,
            "groups": list(user.groups),
        }

    def _git_may_read(self, credential: tuple[str, str], project: str) -> bool:
        username, password = credential
        if project not in self.projects:
            return False
        if hmac.compare_digest(f"{username}:{password}", ":".join(self.deploy)):
            return True
        return username == "oauth2" and self.may_read(self.tokens.get(password), project)

    def _http_backend(self, project: str, rest: str, remote_user: str) -> Response:
        env = {
            "PATH": "/usr/bin:/bin",
            "GIT_PROJECT_ROOT": str(self.repos),
            "GIT_HTTP_EXPORT_ALL": "1",
            "PATH_INFO": f"/{project}.git/{rest}",
            "REQUEST_METHOD": request.method,
            "QUERY_STRING": request.query_string.decode(),
            "CONTENT_TYPE": request.headers.get("Content-Type", ""),
            "REMOTE_USER": remote_user,
            "REMOTE_ADDR": request.remote_addr or "127.0.0.1",
        }
        for header in ("Content-Encoding", "Git-Protocol"):
            if header in request.headers:
                env["HTTP_" + header.upper().replace("-", "_")] = request.headers[header]
        body = request.get_data()
        env["CONTENT_LENGTH"] = str(len(body))
        done = subprocess.run(
            ["git", "http-backend"], input=body, env=env, capture_output=True, timeout=60, check=False
        )
        head, _, payload = done.stdout.partition(b"\r\n\r\n")
        if not _:
            head, _, payload = done.stdout.partition(b"\n\n")
        status, headers = 200, {}
        for line in head.decode("latin-1").splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers[name] = value.strip()
        return Response(payload, status=status, headers=headers)
