"""Template credentials stay inside their URL prefix: dot segments (plain or percent-encoded),
encoded slashes and backslashes cannot carry a credential for /templates to another path."""
from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from wikibot.bootstrap.create import create_wiki
from wikibot.bootstrap.from_git import check_url
from wikibot.bootstrap.templates import TemplateError
from wikibot.config import Config
from wikibot.gitd.names import WikiName
from wikibot.testing.servers import WIKIBOT, commit_files, run_git, unique

CONFIG = replace(Config(), template_credentials={"https://git.example.com/templates": "SECRET"})


@pytest.mark.parametrize("path", [
    "/templates/../private/secret.git", "/templates/./../private/secret.git", "/templates/..",
    "/templates/%2e%2e/private/secret.git", "/templates/%2E%2E/private/secret.git",
    "/templates/.%2e/private/secret.git", "/templates/%2e./private/secret.git",
    "/templates/%2e/x.git", "/templates/./x.git", "/templates/x/../../private.git",
    "/templates%2f..%2fprivate/secret.git", "/templates/x%2F..%2F..%2Fprivate.git",
    "/templates/..%5cprivate/secret.git", "/templates/..\\private/secret.git", "/templates/..;/private.git",
])
def test_dot_segments_and_hidden_slashes_are_refused(path: str) -> None:
    with pytest.raises(TemplateError, match=r"'\.' or '\.\.' segments"):
        check_url(f"https://git.example.com{path}", CONFIG)


@pytest.mark.parametrize("path", ["/templates/wiki.git", "/templates/team/wiki.git", "/templates/a..b.git",
                                  "/templates/...git", "/templates/.hidden.git", "/templates"])
def test_plain_paths_under_the_prefix_get_the_credential(path: str) -> None:
    assert check_url(f"https://git.example.com{path}", CONFIG).authorization


@pytest.mark.parametrize("path", ["/private/secret.git", "/templatesx/wiki.git", "/Templates/wiki.git",
                                  "/%74emplates/wiki.git"])
def test_paths_outside_the_prefix_get_none(path: str) -> None:
    assert check_url(f"https://git.example.com{path}", CONFIG).authorization is None


TRICKS = [  # spellings a server (or a proxy in front of it) may still resolve to another path
    "/templates/%252e%252e/private/s.git", "/templates/..%3b/private", "/templates/..%00/private",
    "/templates/%c0%ae%c0%ae/private", "/templates/%u002e%u002e/private", "/templates/\uff0e\uff0e/private",
    "/templates/..\u2215private", "/templates/x?/../../private", "/templates/x.git#/../../private",
    "/templates/x.git?", "/templates/%41.git", "/templates/x;y.git", "/templates/caf\u00e9.git",
]


@pytest.mark.parametrize("path", TRICKS)
def test_a_url_carrying_a_configured_credential_must_spell_its_path_plainly(path: str) -> None:
    with pytest.raises(TemplateError, match="carries a credential") as refused:
        check_url(f"https://git.example.com{path}", CONFIG)
    assert "SECRET" not in str(refused.value)


@pytest.mark.parametrize("path", TRICKS)
def test_a_url_with_credentials_in_it_must_spell_its_path_plainly(path: str) -> None:
    with pytest.raises(TemplateError, match="carries a credential") as refused:
        check_url(f"https://bob:hunter2-token@elsewhere.example.org{path}", CONFIG)
    assert "hunter2" not in str(refused.value)


@pytest.mark.parametrize("path", ["/templates/%41.git", "/templates/x.git?ref=1", "/a/..%3b/b.git", "/caf\u00e9.git"])
def test_urls_without_a_credential_stay_as_permissive_as_before(path: str) -> None:
    assert check_url(f"https://elsewhere.example.org{path}", CONFIG).authorization is None


def test_a_credential_is_not_sent_outside_its_prefix_through_dot_segments(server, make_user, tmp_path: Path) -> None:
    """The credential is configured for X/tpl.git; `X/tpl.git/../private.git` must not get it,
    although git (curl) would fetch /X/private.git with it."""
    owner = make_user()
    tpl = create_wiki(server.core, WikiName(owner.name, unique("w")), template="empty")[0].name
    private = create_wiki(server.core, WikiName(owner.name, unique("w")), template="empty")[0].name
    for name, page in ((tpl, "template page\n"), (private, "PRIVATE PAGE\n")):
        clone = tmp_path / f"{name.owner}_{name.slug}"
        run_git("clone", "-q", server.clone_url(name, owner.token), str(clone))
        commit_files(clone, {"home.md": page})
        run_git("push", "-q", "origin", "HEAD:main", cwd=clone)
    config = tmp_path / "wikibot.toml"  # the server's own settings (its store, say), plus a credential
    own = server.data / "wikibot.toml"
    config.write_text((own.read_text() if own.exists() else "") +
                      f'\n[bootstrap.credentials]\n"{server.url}/{tpl}.git" = "{owner.token}"\n')
    env = {**os.environ, "WIKIBOT_DATA": str(server.data), "WIKIBOT_CONFIG": str(config),
           "WIKIBOT_ALLOW_PRIVATE_URLS": "1"}
    creator = make_user()

    def create(url: str) -> tuple[subprocess.CompletedProcess[str], WikiName]:
        name = WikiName(creator.name, unique("w"))
        return subprocess.run([*WIKIBOT, "wiki", "create", str(name), "--template", url], env=env,
                              capture_output=True, text=True, timeout=300), name

    done, made = create(f"{server.url}/{tpl}.git")  # the credential works inside its prefix
    assert done.returncode == 0, done.stderr
    assert (server.core.repos.path(made) / "home.md").read_text() == "template page\n"

    escaped, refused = create(f"{server.url}/{tpl}.git/../{private.slug}.git")
    assert escaped.returncode == 1, f"the private wiki was cloned with the template credential: {escaped.stdout}"
    assert "'.' or '..' segments" in escaped.stderr and owner.token not in escaped.stderr
    assert server.core.store.get_wiki(refused) is None
    assert not server.core.repos.path(refused).exists()
