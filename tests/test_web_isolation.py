"""Three wikis served by the same web processes at once: concurrent page views, searches and web saves
from several signed-in sessions, against `wikibot serve` (gunicorn, its threads, the real worker).
Nothing of one wiki (a page, a commit, a search hit, a preference, a permission) may show in another.
"""
from __future__ import annotations

import random
import re
import threading
from collections.abc import Callable
from urllib.parse import unquote

import requests

from wikibot.gitd.commits import FileChange
from wikibot.gitd.names import WikiName
from wikibot.gitd.records import Grant
from wikibot.testing.servers import Server, unique, wait_until
from wikibot.testing.web import PASSWORD, csrf, field

LETTERS = ("alpha", "bravo", "charlie")
ROUNDS = 12


def session(server: Server, user: str) -> requests.Session:
    s = requests.Session()
    form = s.get(f"{server.url}/-/login", timeout=60)
    token = csrf(form.text)
    got = s.post(f"{server.url}/-/login", data={"username": user, "password": PASSWORD, "csrf_token": token},
                 allow_redirects=False, timeout=60)
    assert got.status_code == 303, got.text
    return s


def test_three_wikis_at_once_share_nothing(server: Server):
    core = server.core
    tag = unique("iso")
    roamer = f"{tag}-roamer"  # an editor of all three wikis, in one session, switching between them
    wikis: dict[str, WikiName] = {}
    core.add_user(roamer, email=f"{roamer}@example.org", password=PASSWORD, tier="premium")
    for letter in LETTERS:
        owner = f"{tag}-{letter}"
        core.add_user(owner, email=f"{owner}@example.org", password=PASSWORD, tier="premium")
        wiki = WikiName(owner, letter)
        core.create_wiki(wiki)
        core.commit(wiki, [FileChange("home.md", f"# Home\n\nThe {letter} wiki. marker-{letter}\n".encode()),
                           FileChange(f"{letter} notes.md",
                                      f"# {letter} notes\n\nThe {letter} team keeps its secrets about "
                                      f"{letter} gardening here. marker-{letter}\n".encode())],
                    message=f"{letter} pages", author=(owner, f"{owner}@example.org"), actor=owner, source="mcp")
        core.store.set_grant(Grant(wiki=wiki, user=roamer, role="editor"))
        wikis[letter] = wiki
    owners = {letter: session(server, wiki.owner) for letter, wiki in wikis.items()}
    for letter, s in owners.items():  # each owner names their wiki in its Otterwiki preferences
        admin = s.get(f"{server.url}/{wikis[letter]}/-/admin", timeout=60)
        got = s.post(f"{server.url}/{wikis[letter]}/-/admin", timeout=60, allow_redirects=False,
                     data={"csrf_token": field(admin.text, "csrf_token"), "update_preferences": "1",
                           "site_name": f"Site of {letter}"})
        assert got.status_code in (302, 303), got.text

    def searchable(letter: str) -> bool:
        got = owners[letter].get(f"{server.url}/{wikis[letter]}/-/search", params={"query": "gardening secrets"},
                                 timeout=60)
        hits = re.findall(r'class="wikibot-hit" href="([^"]+)"', got.text)
        return any(f"{letter} notes" in unquote(hit).lower() for hit in hits)

    for letter in LETTERS:
        wait_until(lambda letter=letter: searchable(letter), timeout=300, what=f"wiki {letter} indexed", server=server)

    problems: list[str] = []
    saved: dict[str, list[str]] = {letter: [] for letter in LETTERS}
    lock = threading.Lock()

    def check_page(letter: str, html: str, where: str) -> None:
        others = [o for o in LETTERS if o != letter]
        for other in others:
            if f"marker-{other}" in html or f"/{wikis[other]}/" in html or f"Site of {other}" in html:
                problems.append(f"{where}: wiki {letter} showed something of wiki {other}")

    def act(s: requests.Session, letters: list[str], rng: random.Random, who: str) -> None:
        for n in range(ROUNDS):
            letter = rng.choice(letters)
            wiki = wikis[letter]
            what = rng.choice(["view", "view", "search", "save"])
            base = f"{server.url}/{wiki}"
            if what == "view":
                page = rng.choice(["Home", f"{letter} notes", "-/index", "-/changelog"])
                got = s.get(f"{base}/{page}", timeout=120)
                if got.status_code != 200 or f"Site of {letter}" not in got.text:
                    problems.append(f"{who} viewing {wiki}/{page}: {got.status_code}, site name missing")
                check_page(letter, got.text, f"{who} {wiki}/{page}")
            elif what == "search":
                got = s.get(f"{base}/-/search", params={"query": "what does the team keep about gardening"},
                            timeout=120)
                hits = re.findall(r'class="wikibot-hit" href="([^"]+)"', got.text)
                if not hits or any(not hit.startswith(f"/{wiki}/") for hit in hits):
                    problems.append(f"{who} searching {wiki}: hits {hits}")
                check_page(letter, got.text, f"{who} search {wiki}")
            else:
                line = f"{who} round {n} saved into {letter} (token {rng.getrandbits(40):x})"
                for _ in range(5):  # a conflict (another session saved first) is retried on a fresh editor
                    editor = s.get(f"{base}/Home/edit", timeout=120)
                    text = re.search(r"<textarea[^>]*>(.*?)</textarea>", editor.text, re.S)
                    current = core.repo(wiki).read(core.repos.head(wiki), "home.md").decode()
                    got = s.post(f"{base}/Home/save", allow_redirects=False, timeout=120, data={
                        "csrf_token": field(editor.text, "csrf_token"), "commit": line,
                        "wikibot_base": field(editor.text, "wikibot_base"),
                        "content": (text.group(1) if text else current) + f"\n{line}\n"})
                    if got.status_code == 302:
                        with lock:
                            saved[letter].append(line)
                        break
                    if got.status_code != 409:
                        problems.append(f"{who} saving {wiki}: {got.status_code}")
                        break
        # a session of one wiki's owner never reaches another private wiki
        for other, wiki in wikis.items():
            if other not in letters and s.get(f"{server.url}/{wiki}/", timeout=60).status_code != 404:
                problems.append(f"{who} reached {wiki}")

    runs: list[tuple[Callable, tuple]] = [(act, (owners[letter], [letter], random.Random(i), f"owner-{letter}"))
                                          for i, letter in enumerate(LETTERS)]
    runs += [(act, (session(server, roamer), list(LETTERS), random.Random(10 + i), f"roamer{i}")) for i in range(3)]
    threads = [threading.Thread(target=fn, args=args) for fn, args in runs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not any(t.is_alive() for t in threads), "a session was still running after 10 minutes"
    assert problems == []
    assert sum(len(lines) for lines in saved.values()) > 0
    for letter, wiki in wikis.items():
        head = core.repos.head(wiki)
        repo = core.repo(wiki)
        home = repo.read(head, "home.md").decode()
        for line in saved[letter]:
            assert line in home, f"a save into {wiki} was lost: {line}"
        for other in LETTERS:
            if other != letter:
                assert f"into {other}" not in home and f"marker-{other}" not in home
        authors = {c.author for c in repo.log(head, limit=200)}
        assert authors <= {wiki.owner, roamer}, authors
        prefs = owners[letter].get(f"{server.url}/{wiki}/-/admin", timeout=60).text
        assert f'value="Site of {letter}"' in prefs
