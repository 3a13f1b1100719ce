"""Configuration: the example file is valid and the precedence is file < environment < flag."""
from __future__ import annotations

from pathlib import Path

import pytest

from wikibot.config import DEFAULT_TIERS, ConfigError, load_config

EXAMPLE = Path(__file__).parent.parent / "etc" / "wikibot.example.toml"


def test_example_config_loads_and_matches_the_defaults():
    config = load_config(environ={"WIKIBOT_CONFIG": str(EXAMPLE)})
    assert config.port == 8080 and config.tiers == DEFAULT_TIERS


def test_environment_overrides_file_and_flag_overrides_both(tmp_path):
    (tmp_path / "wikibot.toml").write_text('[server]\nport = 9000\nbase_url = "https://wiki.example.org/"\n'
                                           '[tiers.free]\nmax_pages = 7\n')
    config = load_config(tmp_path, environ={})
    assert config.port == 9000 and config.public_url == "https://wiki.example.org"
    assert config.limits("free").max_pages == 7 and config.limits("free").max_wikis == 1
    assert load_config(tmp_path, environ={"WIKIBOT_PORT": "9100"}).port == 9100
    assert load_config(tmp_path / "other", environ={"WIKIBOT_DATA": str(tmp_path)}).data_dir == tmp_path / "other"


@pytest.mark.parametrize("text", ['[server]\nport = "many"\n', '[server]\ncolour = 1\n',
                                  '[tiers.free]\nmax_hats = 1\n', 'port = = 1', '[accounts]\nsignup = "maybe"\n',
                                  '[accounts.providers.x]\nkind = "saml"\nclient_id = "a"\nclient_secret = "b"\n',
                                  '[accounts.providers.x]\nkind = "oidc"\nclient_id = "a"\nclient_secret = "b"\n',
                                  '[accounts.providers.x]\nkind = "github"\nclient_id = "a"\n',
                                  '[accounts.providers."a b"]\nkind = "github"\nclient_id = "a"\nclient_secret = "b"\n',
                                  '[accounts.providers.x]\nkind = "github"\nclient_id = "a"\nclient_secret = "b"\n'
                                  'colour = "red"\n'])
def test_bad_config_is_a_clear_error(tmp_path, text):
    (tmp_path / "wikibot.toml").write_text(text)
    with pytest.raises(ConfigError):
        load_config(tmp_path, environ={})


def test_accounts_settings_and_identity_providers(tmp_path):
    (tmp_path / "wikibot.toml").write_text(
        '[accounts]\nsignup = "invite"\ninvite_days = 3\n'
        '[accounts.providers.work]\nkind = "oidc"\nissuer = "https://id.example.org"\nclient_id = "wikibot"\n'
        'client_secret = "s3cret"\nlabel = "Work account"\n'
        '[accounts.providers.github]\nkind = "github"\nclient_id = "gh"\nclient_secret = "ghs"\n')
    config = load_config(tmp_path, environ={})
    assert (config.signup, config.invite_days, config.signups_per_hour) == ("invite", 3, 5)
    work, github = config.providers
    assert (work.name, work.kind, work.issuer, work.title) == ("work", "oidc", "https://id.example.org", "Work account")
    assert (github.title, github.github_url, github.github_api_url) == ("GitHub", "https://github.com",
                                                                      "https://api.github.com")
    assert config.provider("github") is github and config.provider("none") is None
    assert "s3cret" not in repr(config)
    assert load_config(tmp_path, environ={"WIKIBOT_SIGNUP": "open"}).signup == "open"
