"""--download against a zip served from 127.0.0.1 (never the real GroupLens site)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from data_prep import PrepError, prepare
from data_prep.download import MOVIELENS_ARCHIVES, fetch
from recsys.data.contract import read_prepared


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature from the base class
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        _QuietHandler.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def served(tmp_path: Path, mini_ml100k: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """(url, sha256) of an ml-100k.zip built from the mini fixture, served on 127.0.0.1 by a thread."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    site = tmp_path / "site"
    site.mkdir()
    archive = site / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for file in sorted(mini_ml100k.iterdir()):
            zf.write(file, f"ml-100k/{file.name}")
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _QuietHandler.requests = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/ml-100k.zip", hashlib.sha256(archive.read_bytes()).hexdigest()
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_download_extract_prepare_and_cache(served: tuple[str, str], tmp_path: Path) -> None:
    url, sha = served
    cache = tmp_path / "cache"
    out = prepare("ml-100k", out=tmp_path / "out", download=True, cache_dir=cache, url=url, sha256=sha,
                  progress=False)
    ds = read_prepared(out)
    assert (ds.n_users, ds.n_items, ds.interactions.height) == (3, 3, 8)
    assert (cache / "ml-100k.zip").is_file()
    assert not list(cache.glob("*.part*"))
    # a second run uses the verified cache instead of downloading again
    prepare("ml-100k", out=tmp_path / "again", download=True, cache_dir=cache, url=url, sha256=sha, progress=False)
    assert _QuietHandler.requests == ["/ml-100k.zip"]


def test_checksum_mismatch_leaves_nothing(served: tuple[str, str], tmp_path: Path) -> None:
    url, _ = served
    cache = tmp_path / "cache"
    wrong = "0" * 64
    with pytest.raises(PrepError) as info:
        prepare("ml-100k", out=tmp_path / "out", download=True, cache_dir=cache, url=url, sha256=wrong,
                progress=False)
    message = str(info.value)
    assert "checksum mismatch" in message and wrong in message and url in message
    assert list(cache.iterdir()) == []  # no partial or unverified file left
    assert not (tmp_path / "out").exists()


def test_unreachable_url_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with pytest.raises(PrepError, match="download failed"):
        fetch("http://127.0.0.1:9/ml-100k.zip", "0" * 64, tmp_path / "x.zip", progress=False, timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_zip_with_escaping_member_is_refused(tmp_path: Path) -> None:
    from data_prep.download import extract_zip

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../outside.txt", "x")
    with pytest.raises(PrepError, match="outside the extraction folder"):
        extract_zip(evil, tmp_path / "extracted")
    assert not (tmp_path / "outside.txt").exists() and not (tmp_path / "extracted").exists()


def test_defaults_point_at_grouplens() -> None:
    for name, archive in MOVIELENS_ARCHIVES.items():
        assert archive.url == f"https://files.grouplens.org/datasets/movielens/{name}.zip"
        assert len(archive.sha256) == 64


def test_download_only_for_movielens(tmp_path: Path) -> None:
    with pytest.raises(PrepError, match="--download is available for ml-100k, ml-1m only"):
        prepare("lastfm", out=tmp_path / "o", download=True, cache_dir=tmp_path)
