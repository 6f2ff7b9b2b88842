"""One typed settings object: TOML file plus VIIS_* overrides; bad input is refused with a
message naming the key."""

import pytest

from viis.core.config import load_settings
from viis.core.errors import ConfigError


def test_defaults_are_the_embedded_setup():
    s = load_settings(environ={})
    assert s.http.host == "127.0.0.1" and s.http.port == 8080
    assert s.db_url.startswith("sqlite:///") and s.storage.segment_seconds == 60


def test_file_then_environment_override(tmp_path):
    f = tmp_path / "viis.toml"
    f.write_text('[http]\nport = 9000\n[storage]\nsegment_seconds = 30\n')
    s = load_settings(f, environ={"VIIS_HTTP__PORT": "9100", "VIIS_DATABASE_URL": "postgresql://x/y"})
    assert s.http.port == 9100 and s.storage.segment_seconds == 30
    assert s.db_url == "postgresql://x/y"


@pytest.mark.parametrize("text,needle", [
    ("[http\nport=1", "not valid UTF-8 TOML"),
    ("[http]\nport = 70000", "http.port"),
    ("[storage]\nsegment_seconds = 0.5", "storage.segment_seconds"),
    ("[nonsense]\nx = 1", "nonsense"),
    ("[log]\nlevel = 'LOUD'", "log.level"),
    ("[[cameras]]\nname = 'x'", "cameras.0.main_url"),
])
def test_bad_config_files_name_what_is_wrong(tmp_path, text, needle):
    f = tmp_path / "viis.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_settings(f, environ={})
    assert needle in str(e.value) and str(f) in str(e.value)


def test_bad_environment_value_is_refused():
    with pytest.raises(ConfigError, match="http.port"):
        load_settings(environ={"VIIS_HTTP__PORT": "eighty"})


def test_oversized_or_binary_config_is_refused(tmp_path):
    big = tmp_path / "big.toml"
    big.write_bytes(b"# " + b"x" * 2_000_000)
    with pytest.raises(ConfigError, match="too large"):
        load_settings(big, environ={})
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_settings(binary, environ={})


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_camera_password_in_config_is_a_secret(tmp_path):
    f = tmp_path / "viis.toml"
    f.write_text('[[cameras]]\nname = "a"\nmain_url = "rtsp://h/x"\npassword = "hunter2"\n')
    s = load_settings(f, environ={})
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.model_dump())
