"""Fetching the MovieLens archives from GroupLens: checksum-verified, cached, extracted safely.

Only MovieLens is downloaded: GroupLens serves stable zips with known checksums. The S3-Rec/P5 files
have no canonical download location, so those datasets are read from a folder the user provides.

A download goes to `<name>.part` beside its final path and is renamed only after its sha256 matches,
so an interrupted or corrupted transfer never poses as a good archive.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from data_prep.errors import PrepError
from data_prep.rawfiles import sha256_file


@dataclass(frozen=True)
class Archive:
    url: str
    sha256: str
    folder: str  # the folder inside the zip that holds the files


# sha256 values as recorded in tensorflow/datasets url_checksums/movielens.txt (ml-100k.zip 4,924,029
# bytes, ml-1m.zip 5,917,549 bytes); GroupLens itself publishes md5 sums only.
MOVIELENS_ARCHIVES = {
    "ml-100k": Archive(
        "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
        "ml-100k",
    ),
    "ml-1m": Archive(
        "https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
        "ml-1m",
    ),
}


def default_cache_dir() -> Path:
    """$RECSYS_CACHE, else $XDG_CACHE_HOME/recsys, else ~/.cache/recsys."""
    if os.environ.get("RECSYS_CACHE"):
        return Path(os.environ["RECSYS_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "recsys"


def fetch(url: str, sha256: str, dest: Path, *, progress: bool = True, timeout: float = 60.0) -> Path:
    """Download `url` to `dest` unless a file with the right sha256 is already there."""
    if dest.is_file() and sha256_file(dest) == sha256.lower():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f"{dest.name}.part-{uuid.uuid4().hex[:8]}")
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, part.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name, disable=not progress) as bar:
                for block in iter(lambda: response.read(1 << 16), b""):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
        actual = digest.hexdigest()
        if actual != sha256.lower():
            raise PrepError(
                url,
                f"checksum mismatch: the download has sha256 {actual}",
                expected=f"sha256 {sha256.lower()}; the file was deleted (a changed upstream file, a proxy page "
                "or a truncated transfer); pass the new checksum only if you trust the source",
            )
        part.replace(dest)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        raise PrepError(url, f"download failed ({exc})", expected="a reachable URL (or pass --raw DIR)") from exc
    finally:
        part.unlink(missing_ok=True)
    return dest


def extract_zip(archive: Path, into: Path) -> Path:
    """Extract into a fresh folder, refusing members that would land outside it."""
    tmp = into.with_name(f".{into.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with zipfile.ZipFile(archive) as zf:
            root = tmp.resolve()
            for member in zf.namelist():
                target = (tmp / member).resolve()
                if target != root and root not in target.parents:
                    raise PrepError(archive, f"member {member!r} would be written outside the extraction folder",
                                    expected="a zip with relative paths only")
            zf.extractall(tmp)
        if into.exists():
            shutil.rmtree(into)
        tmp.rename(into)
    except zipfile.BadZipFile as exc:
        raise PrepError(archive, f"not a zip file ({exc})", expected="the GroupLens zip") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return into


def download_movielens(
    name: str,
    cache_dir: Path | None = None,
    *,
    url: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
) -> Path:
    """Fetch and extract ml-100k or ml-1m; returns the folder holding its files.

    `url` and `sha256` override the GroupLens defaults (a mirror, or a test server).
    """
    if name not in MOVIELENS_ARCHIVES:
        raise PrepError(None, f"--download is available for {', '.join(MOVIELENS_ARCHIVES)} only, not {name}")
    archive = MOVIELENS_ARCHIVES[name]
    url = url or archive.url
    sha256 = (sha256 or archive.sha256).lower()
    cache = cache_dir or default_cache_dir()
    zip_path = fetch(url, sha256, cache / f"{name}.zip", progress=progress)
    extracted = cache / f"{name}-{sha256[:12]}"
    marker = extracted / ".complete"
    if not marker.is_file():
        extract_zip(zip_path, extracted)
        marker.write_text(sha256 + "\n", encoding="utf-8")
    folder = extracted / archive.folder
    return folder if folder.is_dir() else extracted

