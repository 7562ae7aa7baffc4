"""ServeSettings is the one place the service's defaults are written; the CLI cannot drift."""

from __future__ import annotations

import argparse

import pytest

from realfake.errors import ConfigError
from realfake.serve.settings import MB, ServeSettings

# `realfake serve` options whose value is converted on the way into ServeSettings: the option's
# destination -> (the field, the conversion of the option's default).
CONVERTED = {
    "max_body_mb": ("max_body_bytes", lambda mb: int(mb * MB)),
    "cors_origin": ("cors_origins", tuple),
}
NOT_SETTINGS = {"help", "model", "handler", "command", "verbose"}


def _serve_parser() -> argparse.ArgumentParser:
    from realfake.cli import build_parser

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices["serve"]


def test_every_serve_option_defaults_to_the_settings_default():
    parser = _serve_parser()
    options = [a for a in parser._actions if a.dest not in NOT_SETTINGS]
    assert len(options) >= 10, [a.dest for a in options]
    for action in options:
        field, convert = CONVERTED.get(action.dest, (action.dest, lambda v: v))
        assert field in ServeSettings.model_fields, (
            f"`realfake serve {action.option_strings[0]}` has no ServeSettings field {field!r}"
        )
        assert convert(action.default) == ServeSettings.default(field), (
            f"`realfake serve {action.option_strings[0]}` defaults to {action.default!r}; "
            f"ServeSettings.{field} to {ServeSettings.default(field)!r}"
        )


def test_settings_come_from_arguments_then_the_environment(monkeypatch):
    monkeypatch.setenv("REALFAKE_SERVE_MAX_FILES", "3")
    monkeypatch.setenv("REALFAKE_SERVE_CORS_ORIGINS", '["http://a.example"]')
    monkeypatch.setenv("REALFAKE_API_KEY", "from-env")
    from_env = ServeSettings()
    assert from_env.max_files == 3 and from_env.cors_origins == ("http://a.example",)
    assert from_env.api_key == "from-env"
    assert "from-env" not in repr(from_env)  # settings get logged, the key does not
    given = ServeSettings(max_files=5, api_key=None)
    assert given.max_files == 5 and given.api_key is None  # arguments win
    monkeypatch.setenv("REALFAKE_SERVE_MAX_FILES", "")  # compose's unset variable
    assert ServeSettings().max_files == ServeSettings.default("max_files") == 16
    assert ServeSettings.from_json(given.to_json()) == given


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"port": 0}, "serve setting port=0 (an argument or $REALFAKE_SERVE_PORT)"),
        ({"backend": "tensorrt"}, "serve setting backend='tensorrt'"),
        ({"max_batch": "many"}, "valid integer"),
        ({"api_key": " "}, "an empty API key protects nothing"),
        ({"decode_threads": 1, "large_decodes": 2}, "large_decodes=2: expected at most"),
    ],
)
def test_a_bad_setting_is_one_sentence_naming_it(values, words):
    with pytest.raises(ConfigError, match=r"^[^\n]*$") as raised:
        ServeSettings(**values)
    assert words in str(raised.value)


def test_a_bad_variable_names_it(monkeypatch):
    monkeypatch.setenv("REALFAKE_SERVE_PORT", "http")
    with pytest.raises(ConfigError, match=r"port='http' \(an argument or \$REALFAKE_SERVE_PORT\)"):
        ServeSettings()


def test_the_command_takes_what_it_is_given_then_the_environment(monkeypatch):
    """`realfake serve` passes only the options given: REALFAKE_SERVE_* fill the others."""
    from realfake.cli import build_parser
    from realfake.cli.serve import settings_from

    monkeypatch.setenv("REALFAKE_SERVE_MAX_FILES", "3")
    monkeypatch.setenv("REALFAKE_SERVE_PORT", "8123")
    parser = build_parser()
    plain = settings_from(parser.parse_args(["serve", "RUN"]))
    assert (plain.max_files, plain.port, plain.max_batch) == (3, 8123, 64)
    given = settings_from(
        parser.parse_args(
            ["serve", "RUN", "--max-files", "5", "--port", "8000", "--max-body-mb", "2",
             "--cors-origin", "http://a.example", "--cors-origin", "http://b.example"]
        )
    )  # fmt: skip
    assert (given.max_files, given.port) == (5, 8000)  # a flag wins, even at the default value
    assert given.max_body_bytes == 2 * MB
    assert given.cors_origins == ("http://a.example", "http://b.example")
