"""What a link becomes: ``ResolvedRepo``, and the contract every provider fulfils (``RepoProvider``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from binderlite.links.imagenames import image_name, private_image_name
from binderlite.settings import Settings


@dataclass
class ResolvedRepo:
    """Everything the builder and launcher need to know about one resolved link."""

    provider: str
    spec: str
    repo_url: str
    unresolved_ref: str
    resolved_ref: str
    resolved_spec: str
    ref_url: str
    build_slug: str
    content_provider: str = "git"
    notes: list[str] = field(default_factory=list)
    private: bool = False  # resolution needed the host's credential (secrets file)

    def image(self, prefix: str, key: bytes = b"") -> str:
        """BinderHub's image name; for a private repository a keyed hash (``key`` required)."""
        if self.private:
            return private_image_name(prefix, key, self.build_slug, self.resolved_ref)
        return image_name(prefix, self.build_slug, self.resolved_ref)

    @property
    def binder_request(self) -> str:
        return f"v2/{self.provider}/{self.spec}"

    @property
    def binder_persistent_request(self) -> str:
        return f"v2/{self.provider}/{self.resolved_spec}"


@dataclass(frozen=True)
class LinkForm:
    """How the landing page asks for a provider's repository (BinderHub's repoproviders format)."""

    label: str
    placeholder: str
    ref: bool = True
    url_encode: bool = False


class RepoProvider:
    """One kind of link: parse the spec in ``__init__`` (raise SpecError), resolve on demand.

    Each subclass describes itself completely, so adding a provider is one
    class: its link name, display name, landing-page form, the README line,
    and how its content is fetched (``content_provider``: ``git``, or the name
    of repo2docker's content provider for a record).
    """

    name: ClassVar[str] = ""
    display_name: ClassVar[str] = ""
    form: ClassVar[LinkForm] = LinkForm("DOI, ID or URL", "10.5281/zenodo.3242074", ref=False, url_encode=True)
    link_pattern: ClassVar[str] = ""  # e.g. "/v2/gh/<org>/<repo>/<ref>", for the README
    documentation: ClassVar[str] = ""
    content_provider: ClassVar[str] = "git"

    def __init__(self, spec: str, settings: Settings):
        self.spec = spec
        self.settings = settings

    def repo_url(self) -> str:
        raise NotImplementedError

    def resolve(self) -> ResolvedRepo:
        raise NotImplementedError

    @classmethod
    def display_config(cls) -> dict:
        """This provider in BinderHub's ``/api/repoproviders`` shape."""
        return {
            "id": cls.name,
            "display_name": cls.display_name or cls.name,
            "repo": {"label": cls.form.label, "placeholder": cls.form.placeholder, "urlEncode": cls.form.url_encode},
            "ref": {"enabled": cls.form.ref, "default": "HEAD"},
        }
