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
                                  '[tiers.free]\nmax_hats = 1\n', 'port = = 1'])
def test_bad_config_is_a_clear_error(tmp_path, text):
    (tmp_path / "wikibot.toml").write_text(text)
    with pytest.raises(ConfigError):
        load_config(tmp_path, environ={})
