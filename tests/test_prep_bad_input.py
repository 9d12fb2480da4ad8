"""Bad raw input fails with a PrepError naming file, line (or key) and expectation, and writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_prep import PrepError, prepare
from data_prep.cli import main


def _expect_failure(name: str, raw: Path, tmp_path: Path, *fragments: str, **options: object) -> PrepError:
    out = tmp_path / "out"
    before = set(tmp_path.iterdir())
    with pytest.raises(PrepError) as info:
        prepare(name, raw=raw, out=out, **options)  # type: ignore[arg-type]
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert not out.exists()
    assert set(tmp_path.iterdir()) == before  # no temporary sibling left either
    return info.value


def _replace_line(path: Path, number: int, text: str, encoding: str = "latin-1") -> None:
    lines = path.read_text(encoding=encoding).splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n", encoding=encoding)


def test_mini_folders_are_valid(mini_ml100k: Path, mini_s3rec: Path, tmp_path: Path) -> None:
    """The fixtures themselves prepare cleanly, so each failure below is due to the one corruption."""
    assert prepare("ml-100k", raw=mini_ml100k, out=tmp_path / "a").is_dir()
    assert prepare("yelp", raw=mini_s3rec, out=tmp_path / "b").is_dir()


def test_non_integer_id_in_u_data(mini_ml100k: Path, tmp_path: Path) -> None:
    _replace_line(mini_ml100k / "u.data", 3, "2\tabc\t3\t881250000")
    err = _expect_failure("ml-100k", mini_ml100k, tmp_path, "u.data", "line 3", "'abc'", "integer")
    assert err.line == 3


def test_non_integer_item_in_s3rec_line(mini_s3rec: Path, tmp_path: Path) -> None:
    _replace_line(mini_s3rec / "Yelp.txt", 2, "2 2 x3 4", encoding="utf-8")
    _expect_failure("yelp", mini_s3rec, tmp_path, "Yelp.txt", "line 2", "'x3'", "integer")


def test_non_integer_user_in_s3rec_line(mini_s3rec: Path, tmp_path: Path) -> None:
    _replace_line(mini_s3rec / "Yelp.txt", 3, "u3 4 1", encoding="utf-8")
    _expect_failure("yelp", mini_s3rec, tmp_path, "Yelp.txt", "line 3", "'u3'")


def test_s3rec_line_without_items(mini_s3rec: Path, tmp_path: Path) -> None:
    _replace_line(mini_s3rec / "Yelp.txt", 2, "2", encoding="utf-8")
    _expect_failure("yelp", mini_s3rec, tmp_path, "Yelp.txt", "line 2", "no items")


def test_repeated_user_line(mini_s3rec: Path, tmp_path: Path) -> None:
    _replace_line(mini_s3rec / "Yelp.txt", 3, "1 4 1", encoding="utf-8")
    _expect_failure("yelp", mini_s3rec, tmp_path, "Yelp.txt", "line 3", "one line per user")


def test_wrong_separator(mini_ml100k: Path, tmp_path: Path) -> None:
    data = mini_ml100k / "u.data"
    data.write_text(data.read_text().replace("\t", ","))
    _expect_failure("ml-100k", mini_ml100k, tmp_path, "u.data", "line 1", "found 1 field", "comma",
                    "4 fields separated by tab")


def test_utf8_reader_given_latin1_bytes(mini_s3rec: Path, tmp_path: Path) -> None:
    path = mini_s3rec / "Yelp.txt"
    path.write_bytes(path.read_bytes() + "4 caf\u00e9\n".encode("latin-1"))
    _expect_failure("yelp", mini_s3rec, tmp_path, "Yelp.txt", "line 4", "0xE9", "not valid utf-8")


def test_json_given_latin1_bytes(mini_s3rec: Path, tmp_path: Path) -> None:
    path = mini_s3rec / "Yelp_item2attributes.json"
    path.write_bytes('{"1": [1],\n "2": [3], "caf\u00e9": [1]}'.encode("latin-1"))
    _expect_failure("yelp", mini_s3rec, tmp_path, "Yelp_item2attributes.json", "line 2", "not valid utf-8")


def test_missing_file(mini_ml100k: Path, tmp_path: Path) -> None:
    (mini_ml100k / "u.item").unlink()
    _expect_failure("ml-100k", mini_ml100k, tmp_path, "u.item", "missing file")


def test_missing_raw_folder(tmp_path: Path) -> None:
    _expect_failure("lastfm", tmp_path / "nowhere", tmp_path, "nowhere", "no such folder", "LastFM.txt")


def test_u_item_line_with_too_few_fields(mini_ml100k: Path, tmp_path: Path) -> None:
    _replace_line(mini_ml100k / "u.item", 2, "2|Heat (1995)|01-Jan-1995")
    _expect_failure("ml-100k", mini_ml100k, tmp_path, "u.item", "line 2", "found 3 field(s)", "24 fields",
                    "movie_id, title")


def test_sequence_item_absent_from_attribute_file(mini_s3rec: Path, tmp_path: Path) -> None:
    path = mini_s3rec / "Yelp_item2attributes.json"
    path.write_text(json.dumps({"1": [1], "2": [3], "4": []}))
    _expect_failure("yelp", mini_s3rec, tmp_path, "Yelp.txt", "line 1", "item 3",
                    "no entry in Yelp_item2attributes.json")


def test_rated_movie_absent_from_u_item(mini_ml100k: Path, tmp_path: Path) -> None:
    _replace_line(mini_ml100k / "u.data", 5, "3\t99\t1\t881250001")
    _expect_failure("ml-100k", mini_ml100k, tmp_path, "u.data", "line 5", "movie id 99", "u.item")


@pytest.mark.parametrize("file", ["u.data", "u.item", "u.user"])
def test_empty_file(mini_ml100k: Path, tmp_path: Path, file: str) -> None:
    (mini_ml100k / file).write_bytes(b"")
    _expect_failure("ml-100k", mini_ml100k, tmp_path, file, "empty")


def test_empty_s3rec_file(mini_s3rec: Path, tmp_path: Path) -> None:
    (mini_s3rec / "Yelp.txt").write_text("\n\n")
    _expect_failure("yelp", mini_s3rec, tmp_path, "Yelp.txt", "empty")


def test_blank_line_inside_file(mini_ml100k: Path, tmp_path: Path) -> None:
    _replace_line(mini_ml100k / "u.data", 4, "")
    _expect_failure("ml-100k", mini_ml100k, tmp_path, "u.data", "line 4", "empty line")


def test_invalid_json(mini_s3rec: Path, tmp_path: Path) -> None:
    (mini_s3rec / "Yelp_item2attributes.json").write_text('{"1": [1],\n"2": [3,,]}')
    _expect_failure("yelp", mini_s3rec, tmp_path, "Yelp_item2attributes.json", "line 2", "not valid JSON")


def test_json_value_not_a_list_of_ints(mini_s3rec: Path, tmp_path: Path) -> None:
    (mini_s3rec / "Yelp_item2attributes.json").write_text('{"1": [1], "2": ["x"], "3": [2], "4": []}')
    err = _expect_failure("yelp", mini_s3rec, tmp_path, "Yelp_item2attributes.json", "key '2'", "integer")
    assert err.key == "2"


def test_json_key_not_an_item_id(mini_s3rec: Path, tmp_path: Path) -> None:
    (mini_s3rec / "Yelp_item2attributes.json").write_text('{"1": [1], "two": [3], "3": [2], "4": []}')
    _expect_failure("yelp", mini_s3rec, tmp_path, "Yelp_item2attributes.json", "key 'two'", "not an integer")


def test_datamaps_without_an_id(mini_s3rec: Path, tmp_path: Path) -> None:
    raw = tmp_path / "sports"
    raw.mkdir()
    (raw / "Sports_and_Outdoors.txt").write_text((mini_s3rec / "Yelp.txt").read_text())
    (raw / "Sports_and_Outdoors_item2attributes.json").write_text(
        (mini_s3rec / "Yelp_item2attributes.json").read_text()
    )
    (raw / "datamaps.json").write_text(json.dumps({
        "id2item": {"1": "A1", "2": "A2", "3": "A3"},
        "id2user": {"1": "U1", "2": "U2", "3": "U3"},
    }))  # fmt: skip
    _expect_failure("amazon-sports", raw, tmp_path, "datamaps.json", "key 'id2item'", "id 4 has no entry")


def test_min_rating_on_implicit_data(mini_s3rec: Path, tmp_path: Path) -> None:
    _expect_failure("yelp", mini_s3rec, tmp_path, "--min-rating", "no ratings", min_rating=4.0)


def test_filters_that_remove_everything(mini_ml100k: Path, tmp_path: Path) -> None:
    _expect_failure("ml-100k", mini_ml100k, tmp_path, "removed every interaction", k_core=50)


def test_cli_prints_message_and_exits_2(mini_ml100k: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _replace_line(mini_ml100k / "u.data", 2, "1\t2\tfive\t881250950")
    out = tmp_path / "out"
    assert main(["ml-100k", "--raw", str(mini_ml100k), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert "recsys prep: error:" in captured.err and "line 2" in captured.err and "'five'" in captured.err
    assert "Traceback" not in captured.err + captured.out
    assert not out.exists()
