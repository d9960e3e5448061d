"""The pairs file of a batch verify: header, comments, relative paths, one-line errors."""

from pathlib import Path

import pytest

from facenet_tf.recognition.pair_list import PairListError, read_pair_list


def test_rows_header_comments_and_paths(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"")
    (tmp_path / "pairs.csv").write_text("# my pairs\nfirst,second\nx.jpg, sub/y.png\n\n/abs/z.jpg,x.jpg\n")
    pairs = read_pair_list(tmp_path / "pairs.csv")
    assert [(p.line, p.a, p.b) for p in pairs] == [
        (3, tmp_path / "x.jpg", tmp_path / "sub" / "y.png"), (5, Path("/abs/z.jpg"), tmp_path / "x.jpg")]


def test_a_first_row_of_photos_is_not_a_header(tmp_path):
    (tmp_path / "pairs.csv").write_text("a.jpg,b.jpg\nIMG_1,IMG_2\n")
    assert [p.line for p in read_pair_list(tmp_path / "pairs.csv")] == [1, 2]
    (tmp_path / "IMG_3").write_bytes(b"")  # no suffix, but it exists
    (tmp_path / "pairs.csv").write_text("IMG_3,IMG_4\n")
    assert [p.line for p in read_pair_list(tmp_path / "pairs.csv")] == [1]


@pytest.mark.parametrize("content, message", [
    (b"a.jpg\n", r"pairs.csv:1: expected two photo paths separated by a comma; got 1 field"),
    (b"a.jpg,b.jpg\nc.jpg,\n", r"pairs.csv:2: expected two photo paths"),
    (b"a.jpg,b.jpg\x00\n", "is binary"),
    (b"\xff\xfe\x00a", "is not UTF-8 text"),
    (b"photo_a,photo_b\n", "lists no pairs"),
])
def test_bad_files(tmp_path, content, message):
    (tmp_path / "pairs.csv").write_bytes(content)
    with pytest.raises(PairListError, match=message):
        read_pair_list(tmp_path / "pairs.csv")
    with pytest.raises(PairListError, match="does not exist"):
        read_pair_list(tmp_path / "none.csv")
    with pytest.raises(PairListError, match="is a folder"):
        read_pair_list(tmp_path)
